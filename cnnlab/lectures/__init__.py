"""The lectures' calculators and pictures: layer arithmetic, autodiff, saliency and Grad-CAM, the architecture zoo.

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
