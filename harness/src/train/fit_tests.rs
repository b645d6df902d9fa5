//! End-to-end tests of `fit_transformer` / `load_trained` on tiny random checkpoints written to
//! a temporary directory in Hugging Face layout (config.json, model.safetensors, a word-level
//! tokenizer.json), on a synthetic task whose label is a keyword in the text.

use super::*;
use crate::data::Example;
use crate::models::params::{Mode, ParamBuilder, Source};
use crate::suite::{LoraSpec, Warmup};
use rand::{Rng, SeedableRng};

const WORDS: [&str; 20] = [
    "alpha", "beta", "gamma", "the", "a", "fee", "card", "bank", "loan", "late", "paid", "account", "report", "credit",
    "charge", "money", "month", "told", "call", "again",
];

fn tokenizer_json(with_cls_sep: bool) -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
        .iter()
        .chain(WORDS.iter())
        .enumerate()
    {
        vocab.insert(t.to_string(), i.into());
    }
    let special = |t: &str, id: u32| serde_json::json!({"id": t, "ids": [id], "tokens": [t]});
    let post = if with_cls_sep {
        serde_json::json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": special("[CLS]", 1), "[SEP]": special("[SEP]", 2)}
        })
    } else {
        serde_json::Value::Null
    };
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": post, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// A tiny random checkpoint of `config_json` in `dir` (backbone only, as a Hub base model).
fn write_tiny_model(dir: &Path, config_json: &str, encoder: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(encoder).to_string()).unwrap();
    let config = ModelConfig::parse(config_json, Path::new("config.json")).unwrap();
    let p = ParamBuilder::new(Source::Random, Mode::Full, DType::F32, Device::Cpu, 11);
    let (_, params) = models::build_classifier(&config, p, 2, None).unwrap();
    let tensors: HashMap<String, Tensor> = params
        .trainable
        .iter()
        .filter(|v| !v.name.starts_with("classifier") && !v.name.starts_with("score"))
        .map(|v| (v.name.clone(), v.var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn keyword_dataset(n_train: usize, n_val: usize) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut make = |n: usize, split: &str| -> Vec<Example> {
        (0..n)
            .map(|i| {
                let label = i % 3;
                let mut words: Vec<&str> = (0..rng.gen_range(3..12))
                    .map(|_| WORDS[rng.gen_range(3..WORDS.len())])
                    .collect();
                let at = rng.gen_range(0..=words.len());
                words.insert(at, WORDS[label]);
                Example {
                    id: format!("{split}{i}"),
                    text: words.join(" "),
                    label,
                }
            })
            .collect()
    };
    let train = make(n_train, "t");
    let val = make(n_val, "v");
    Dataset {
        labels: vec!["alpha".into(), "beta".into(), "gamma".into()],
        train,
        val,
        test: vec![],
        inputs: vec![],
    }
}

fn spec(dir: &Path, method: TrainMethod, lora: Option<LoraSpec>, lr: f64, epochs: usize) -> TransformerSpec {
    TransformerSpec {
        checkpoint: dir.display().to_string(),
        local_dir: None,
        method,
        lora,
        learning_rate: lr,
        epochs,
        batch_size: 8,
        eval_batch_size: 16,
        max_length: 32,
        weight_decay: 0.01,
        decay_bias_and_norm: false,
        warmup: Warmup::Ratio(0.1),
        grad_clip: Some(1.0),
        grad_accumulation: 1,
        class_weights: ClassWeights::None,
        pooling: None,
        length_bucketing: true,
        dtype: "f32".into(),
        max_train_examples: None,
    }
}

const TINY_BERT: &str = r#"{"model_type": "bert", "vocab_size": 24, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0}"#;
const TINY_QWEN2: &str = r#"{"model_type": "qwen2", "vocab_size": 24, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true,
    "eos_token_id": 2}"#;

#[test]
fn training_learns_the_keyword_task_and_reloads_identically() {
    let data = keyword_dataset(120, 30);
    for (config, encoder, family) in [(TINY_BERT, true, Family::Encoder), (TINY_QWEN2, false, Family::Decoder)] {
        let tmp = tempfile::tempdir().unwrap();
        let model_dir = tmp.path().join("base");
        write_tiny_model(&model_dir, config, encoder);
        let targets = if encoder {
            vec!["query", "value"]
        } else {
            vec!["q_proj", "v_proj"]
        };
        let lora = LoraSpec {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|s| s.to_string()).collect(),
        };
        for (method, lora, lr) in [(TrainMethod::Full, None, 3e-3), (TrainMethod::Lora, Some(lora), 1e-2)] {
            let work = tmp.path().join(format!("{method:?}"));
            let s = spec(&model_dir, method, lora, lr, 8);
            let (clf, report) = fit_transformer(&s, family, &data, 42, &work).unwrap();
            let label = format!("{family:?} {method:?}");
            assert_eq!(report.epochs.len(), 8, "{label}");
            assert!(
                report.epochs.last().unwrap().train_loss < report.epochs[0].train_loss,
                "{label}: {report:?}"
            );
            let best = &report.epochs[report.best_epoch - 1];
            assert!(
                best.val_accuracy > 0.9,
                "{label}: the keyword task should be learnt: {:?}",
                report.epochs
            );
            assert!(work.join("trained.json").is_file() && work.join("train_report.json").is_file());
            // The returned classifier is the best epoch's, scoring val as it did in training.
            let texts: Vec<&str> = data.val.iter().map(|e| e.text.as_str()).collect();
            let pred: Vec<usize> = clf.predict(&texts).unwrap().iter().map(|p| p.0).collect();
            let gold: Vec<usize> = data.val.iter().map(|e| e.label).collect();
            assert!(
                (metrics::macro_f1(&gold, &pred, 3).unwrap() - best.val_macro_f1).abs() < 1e-9,
                "{label}"
            );
            // Re-loading from disk gives the same probabilities.
            let again = load_trained(&s, family, 3, &work).unwrap();
            let (p1, p2) = (clf.predict_proba(&texts).unwrap(), again.predict_proba(&texts).unwrap());
            for (a, b) in p1.iter().flatten().zip(p2.iter().flatten()) {
                assert!((a - b).abs() < 1e-5, "{label}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn linear_probe_trains_only_the_head() {
    let data = keyword_dataset(30, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let (_, report) = fit_transformer(
        &spec(&model_dir, TrainMethod::LinearProbe, None, 1e-2, 1),
        Family::Decoder,
        &data,
        1,
        &tmp.path().join("w"),
    )
    .unwrap();
    assert_eq!(report.trainable_params, 32 * 3);
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let data = keyword_dataset(48, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let work = tmp.path().join("w");
    let mut s = spec(&model_dir, TrainMethod::Full, None, 1e30, 3);
    s.grad_clip = None;
    s.warmup = Warmup::Steps(0);
    let err = fit_transformer(&s, Family::Decoder, &data, 1, &work)
        .err()
        .expect("must diverge")
        .to_string();
    assert!(err.contains("diverged at optimizer step"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&work)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn wrong_family_and_missing_files_are_named_errors() {
    let data = keyword_dataset(6, 3);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_BERT, true);
    let err = fit_transformer(
        &spec(&model_dir, TrainMethod::Full, None, 1e-3, 1),
        Family::Decoder,
        &data,
        1,
        tmp.path(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("bert") && err.contains("decoder"), "{err}");
    std::fs::remove_file(model_dir.join("tokenizer.json")).unwrap();
    let err = fit_transformer(
        &spec(&model_dir, TrainMethod::Full, None, 1e-3, 1),
        Family::Encoder,
        &data,
        1,
        tmp.path(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}
