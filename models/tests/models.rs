//! The generated models: parameter counts against the reference implementations,
//! determinism, the cache, and a tract load-and-run of each.

use ecoedge_models::{Builtin, SEED};
use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

#[test]
fn parameter_counts_match_the_reference_models() {
    for model in Builtin::ALL {
        let generated = model.generate(SEED);
        assert_eq!(generated.parameters, model.parameters(), "{model}");
    }
    assert_eq!(Builtin::ResNet50.parameters(), 25_557_032);
    assert_eq!(Builtin::BertTiny.parameters(), 4_385_920);
}

/// Every initializer element in the file: trainable parameters plus batch-norm
/// running statistics and index constants.
fn initializer_elements(model: &ModelProto) -> u64 {
    let graph = model.graph.as_ref().expect("graph");
    graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>() as u64)
        .sum()
}

#[test]
fn files_declare_opset_17_and_a_symbolic_batch() {
    for model in [Builtin::Mlp, Builtin::BertTiny] {
        let g = model.generate(SEED).model;
        assert_eq!(g.opset_import[0].version, 17);
        let graph = g.graph.as_ref().unwrap();
        for input in &graph.input {
            let shape = match input.r#type.as_ref().unwrap().value.as_ref().unwrap() {
                tract_onnx::pb::type_proto::Value::TensorType(t) => t.shape.clone().unwrap(),
            };
            let first = shape.dim[0].value.clone().unwrap();
            assert_eq!(
                first,
                tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam("N".into())
            );
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_weights() {
    let a = Builtin::Mlp.generate(7).model.encode_to_vec();
    let b = Builtin::Mlp.generate(7).model.encode_to_vec();
    let c = Builtin::Mlp.generate(8).model.encode_to_vec();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), c.len());
}

#[test]
fn cache_generates_once_and_the_file_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = Builtin::Mlp.path_in(dir.path()).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert_eq!(Builtin::Mlp.path_in(dir.path()).unwrap(), path);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    let decoded = ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    assert_eq!(initializer_elements(&decoded), Builtin::Mlp.parameters());
    // Nothing but the model is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_broken_cache_file_is_generated_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = Builtin::Mlp.path_in(dir.path()).unwrap();
    let good = std::fs::read(&path).unwrap();
    for broken in [&b""[..], &good[..good.len() / 2], b"not a model"] {
        std::fs::write(&path, broken).unwrap();
        assert_eq!(Builtin::Mlp.path_in(dir.path()).unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
}

/// Loads `model` from a fresh cache, fixes the batch at `batch`, runs it on
/// `inputs` and returns the outputs.
fn run(model: Builtin, batch: usize, inputs: TVec<TValue>) -> TVec<TValue> {
    let dir = tempfile::tempdir().unwrap();
    let path = model.path_in(dir.path()).unwrap();
    let mut onnx = tract_onnx::onnx().model_for_path(&path).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let fact = InferenceFact::dt_shape(input.datum_type(), input.shape());
        onnx.set_input_fact(i, fact).unwrap();
    }
    let plan = onnx.into_optimized().unwrap().into_runnable().unwrap();
    let out = plan.run(inputs).unwrap();
    for o in &out {
        assert_eq!(o.shape()[0], batch, "{model}: batch axis of the output");
        let view = o.to_plain_array_view::<f32>().unwrap();
        assert!(
            view.iter().all(|v| v.is_finite()),
            "{model}: non-finite output"
        );
    }
    out
}

#[test]
fn mlp_runs_under_tract() {
    let x = Tensor::from_shape(&[3, 64], &vec![0.5f32; 3 * 64]).unwrap();
    let out = run(Builtin::Mlp, 3, tvec!(x.into()));
    assert_eq!(out[0].shape(), &[3, 10]);
}

#[test]
fn bert_tiny_runs_under_tract() {
    let ids: Vec<i64> = (0..2 * 128).map(|i| (i * 37) % 30_522).collect();
    let ids = Tensor::from_shape(&[2, 128], &ids).unwrap();
    let mut mask = vec![1i64; 2 * 128];
    mask[200..].fill(0);
    let mask = Tensor::from_shape(&[2, 128], &mask).unwrap();
    let out = run(Builtin::BertTiny, 2, tvec!(ids.into(), mask.into()));
    assert_eq!(out[0].shape(), &[2, 128, 128]);
    assert_eq!(out[1].shape(), &[2, 128]);
}

#[test]
fn resnet50_runs_under_tract() {
    let x = Tensor::from_shape(&[1, 3, 224, 224], &vec![0.1f32; 3 * 224 * 224]).unwrap();
    let out = run(Builtin::ResNet50, 1, tvec!(x.into()));
    assert_eq!(out[0].shape(), &[1, 1000]);
    // Batch-norm statistics are constants, not parameters.
    let model = Builtin::ResNet50.generate(SEED).model;
    let stats = initializer_elements(&model) - Builtin::ResNet50.parameters();
    assert_eq!(stats, 2 * 26_560, "running mean and variance of every BN");
}
