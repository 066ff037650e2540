"""OpenCL C kernels (`*.cl`) and their builder. See build.py."""
