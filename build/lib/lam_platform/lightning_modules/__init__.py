"""The LAM as PyTorch modules (model.py) and Lightning systems (systems.py) that wrap them."""
