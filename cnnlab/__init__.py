"""cnnlab: reproduce the classic convolutional-network lecture experiments with Keras 3 and check the numbers.

Reference: lectures 001-004 (../shared/lectures), Chollet's *Deep Learning with Python*, Kim (2014).
Trap: importing cnnlab must not import Keras or TensorFlow; commands import what they need.
"""

__version__ = "0.1.0"
