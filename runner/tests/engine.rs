//! The tract engine on the generated MLP: both plan layouts, caller-fed inputs,
//! and inputs that do not fit.

use ecoedge_models::Builtin;
use ecoedge_runner::inference::{
    DataType, Engine, InputKind, PlanMode, Tensor, TractEngine, TractOptions,
};

fn mlp(plans: PlanMode) -> TractEngine {
    let dir = tempfile::tempdir().unwrap();
    let path = Builtin::Mlp.path_in(dir.path()).unwrap();
    let options = TractOptions {
        max_batch: 4,
        plans,
        threads: 1,
        seed: 3,
        memory_limit: None,
    };
    TractEngine::load(&path, &options).unwrap()
}

#[test]
fn every_layout_runs_every_batch_size() {
    for plans in [PlanMode::Symbolic, PlanMode::PerBatch, PlanMode::Auto] {
        let mut e = mlp(plans);
        assert_ne!(e.plan_report().mode, PlanMode::Auto);
        assert_eq!(e.max_batch(), 4);
        for b in 1..=4 {
            e.run_synthetic(b).unwrap();
        }
        assert!(e.run_synthetic(0).is_err());
        assert!(e.run_synthetic(5).is_err());
    }
}

#[test]
fn inputs_are_described_and_fed_by_the_caller() {
    let mut e = mlp(PlanMode::PerBatch);
    let spec = &e.inputs()[0];
    assert_eq!(spec.name, "input");
    assert_eq!(spec.datatype, DataType::F32);
    assert_eq!(spec.shape, vec![64]);
    assert_eq!(spec.kind, InputKind::Features);
    assert_eq!(e.signature().inputs[0].to_string(), "input: FP32[N, 64]");
    let x = Tensor::from_f32(vec![3, 64], &[0.25f32; 3 * 64]).unwrap();
    let out = e.infer(&[x]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].datatype, DataType::F32);
    assert_eq!(out[0].shape, vec![3, 10]);
}

#[test]
fn caller_inputs_that_do_not_fit_are_refused() {
    let mut e = mlp(PlanMode::Symbolic);
    let refused = |e: &mut TractEngine, t: Tensor| e.infer(&[t]).unwrap_err().to_string();
    let wrong_width = Tensor::from_f32(vec![2, 63], &[0f32; 2 * 63]).unwrap();
    let why = refused(&mut e, wrong_width);
    assert!(
        why.contains("does not fit input: FP32[N, 64] with a batch of 2"),
        "{why}"
    );
    let wrong_type = Tensor::new(DataType::I64, vec![2, 64], vec![0; 2 * 64 * 8]).unwrap();
    assert!(refused(&mut e, wrong_type).contains("INT64[2, 64]"));
    let too_big = Tensor::from_f32(vec![5, 64], &[0f32; 5 * 64]).unwrap();
    assert_eq!(refused(&mut e, too_big), "batch of 5 outside 1..=4");
    let short = Tensor {
        datatype: DataType::F32,
        shape: vec![1, 64],
        data: vec![0; 10],
    };
    assert!(refused(&mut e, short).contains("(10 bytes) does not fit"));
    assert!(
        e.infer(&[])
            .unwrap_err()
            .to_string()
            .contains("0 inputs given")
    );
}

#[test]
fn token_inputs_are_bounded_by_the_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let path = Builtin::BertTiny.path_in(dir.path()).unwrap();
    let options = TractOptions {
        max_batch: 2,
        plans: PlanMode::Symbolic,
        threads: 1,
        seed: 1,
        memory_limit: None,
    };
    let mut e = TractEngine::load(&path, &options).unwrap();
    let kinds: Vec<InputKind> = e.inputs().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![InputKind::TokenIds { vocab: 30_522 }, InputKind::Mask]
    );
    e.run_synthetic(2).unwrap();
}

#[test]
fn a_model_whose_output_names_no_value_is_an_error_not_a_panic() {
    // Found by fuzzing (fuzz/regressions/onnx/): tract-onnx indexes its map of
    // values by each graph output's name and panicked on an unknown one.
    use ecoedge_models::graph::{Dim, GraphBuilder};
    use prost::Message;
    use tract_onnx::pb::tensor_proto::DataType;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dangling.onnx");
    let dims = [Dim::Batch, Dim::Fixed(4)];
    let mut g = GraphBuilder::new(1);
    let x = g.input("input", DataType::Float, &dims);
    g.node("Relu", &[&x], &[]);
    g.output("nowhere", DataType::Float, &dims);
    std::fs::write(&path, g.finish("dangling", "test").encode_to_vec()).unwrap();
    let options = TractOptions {
        max_batch: 2,
        plans: PlanMode::Symbolic,
        threads: 1,
        seed: 1,
        memory_limit: None,
    };
    let e = TractEngine::load(&path, &options).err().expect("refused");
    let e = format!("{e:#}");
    assert!(
        e.contains("dangling.onnx: not an ONNX model tract can load (tract panicked"),
        "{e}"
    );
}
