"""llmcourse: the machinery behind a Jupyter course on finetuning LLMs, offline on a laptop CPU."""
from .errors import CourseError
from .generation import generate
from .models import load_model, pick_device, prepare_bundled_model

__version__ = "0.1.0"

__all__ = ["CourseError", "generate", "load_model", "pick_device", "prepare_bundled_model"]
