"""The C extension; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("modelops_server._kernels", ["src/modelops_server/_kernels.c"])])
