"""The kernel of "Python (LLM)": IPython's, reporting its language without the Python version.

JupyterLab writes the kernel's `language_info` into a notebook's metadata when the kernel starts. Had the
notebooks stored a version, or had the kernel reported one, every notebook would open marked as changed on any
Python but the one it was saved on. The committed notebooks store exactly LANGUAGE_INFO, so they open unchanged.
jupyter-config/ipython_kernel_config.json selects this class (jupyter-config/README.md).
"""
from ipykernel.ipkernel import IPythonKernel

LANGUAGE_INFO = {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}


class CourseKernel(IPythonKernel):
    language_info = LANGUAGE_INFO
