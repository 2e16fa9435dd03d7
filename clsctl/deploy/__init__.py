"""Deploying a trained model: deploy-form conversion, export (ONNX, TorchScript) and speed benchmarks.

Each module imports torch; the CLI imports them only inside its commands.
"""
