"""Export stage: the reference SiamRPN++ PyTorch model, its pysot config, checkpoints, and ONNX export."""
