"""The C extension; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# -O3 whatever the interpreter was built with (Debian's, in the images, passes -O2): the walk's
# lanes are unrolled into registers only at -O3, 6% faster for 100 rows. No -ffast-math: the
# leaf values must add up in order, as scikit-learn adds them.
KERNELS = Extension(
    "modelops_server._kernels", ["src/modelops_server/_kernels.c"], extra_compile_args=["-O3"]
)

setup(ext_modules=[KERNELS])
