"""Layer 1, core: errors, paths, the machine (hardware, allocator), hub ids, fast mode. Imports nothing of the course."""
