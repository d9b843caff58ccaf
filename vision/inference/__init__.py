"""ONNX Runtime core: sessions and providers, the YOLO detector, the CenterFace face detector.

Submodules import onnxruntime only when a model is loaded, so importing this package is cheap.
"""
