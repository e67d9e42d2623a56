"""Deployment: the towers as ONNX models and an onnxruntime feature backend (extra ``[deploy]``)."""
from .onnx_export import export_towers, ort_backend_for, validate_towers
from .ort_backend import OrtBackend, op_time_shares, route_features

__all__ = ['export_towers', 'ort_backend_for', 'validate_towers', 'OrtBackend', 'op_time_shares',
           'route_features']
