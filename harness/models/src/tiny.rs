//! Tiny configs of each family (random weights, a few thousand parameters), shared by the unit
//! tests and clsbench's `gpu-check` / `gpu-perf` (device_check).

pub const TINY_BERT: &str = r#"{"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64, "hidden_act": "gelu"}"#;
pub const TINY_LLAMA: &str = r#"{"model_type": "llama", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true}"#;
/// Also read by scripts/gpu_reference.py (the PyTorch side of the tiny perf shape).
pub const TINY_QWEN2: &str = include_str!("../../../fixtures/configs/tiny-qwen2.json");
/// The tiny ModernBERT of the PyTorch references (4 layers, global every 3rd, a +-3 window).
pub const TINY_MODERNBERT: &str = include_str!("../../../fixtures/reference/modernbert-tiny/config.json");
