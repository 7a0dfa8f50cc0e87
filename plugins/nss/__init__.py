"""MATLAB natural-scene statistics shared by the ``niqe`` and ``brisque`` plugins (not a plugin itself).

Both LIVE releases (Mittal, Moorthy & Bovik) convert to gray with MATLAB's
``rgb2gray``, normalise luminance into MSCN coefficients and fit (asymmetric)
generalised Gaussians to them. These pieces live here, so that neither model
plugin imports the other:

* :mod:`.matlab`: MATLAB's ``rgb2gray`` (uint8), ``fspecial('gaussian')`` and
  ``imresize(im, 0.5)``, written from their documented definitions;
* :mod:`.statistics`: MSCN coefficients with exact zeros, block moments, and
  the GGD / AGGD moment-matching fits of the releases;
* :mod:`.kernels`: the same statistics compiled with numba (optional);
* :mod:`.scratch`: per-thread reusable scratch arrays.
"""
