"""The compiled kernels behind chainrule.kernels (src/chainrule/kernels/*.c).

Everything else is in pyproject.toml. The extensions are optional: without a C compiler the
install succeeds and everything runs its NumPy lines, which give the same numbers.
"""

from setuptools import Extension, setup

# no fused multiply-adds (the same bits as NumPy); sqrt without errno can be vectorised
FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno"]

setup(ext_modules=[
    Extension("chainrule.kernels._adam", sources=["src/chainrule/kernels/adam.c"],
              depends=["src/chainrule/kernels/clones.h", "src/chainrule/kernels/split.h"],
              extra_compile_args=FLAGS,
              extra_link_args=["-pthread"], optional=True),
    Extension("chainrule.kernels._layers", sources=["src/chainrule/kernels/layers.c"],
              depends=["src/chainrule/kernels/clones.h"], extra_compile_args=FLAGS,
              optional=True),
])
