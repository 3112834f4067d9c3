"""Training: cross-validated gradient boosting, ONNX export with the contract, and the model
card.
"""
