"""Layer 4, models: loading models, generating answers, completion backends, retrieval and drafting Q&A."""
