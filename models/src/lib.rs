//! Deterministic generators for the ONNX models EcoEdge ships with (ResNet-50,
//! BERT-tiny, a tiny MLP). Filled by the real-inference work; the crate exists now
//! so the workspace layout is the final one.
