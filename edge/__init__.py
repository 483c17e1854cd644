"""The kiosk: capture, segmentation, walk assembly, inference, screening, MQTT.

Importing `edge` must work without torch, TensorRT, CUDA or librealsense;
those are imported inside the component that needs them.
"""
