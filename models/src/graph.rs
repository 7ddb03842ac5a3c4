//! A small ONNX graph builder: nodes, seeded initializers, parameter counting.
//!
//! The protobuf types are tract-onnx's prost-generated `pb` module, so the bytes
//! written are exactly what tract (and any other ONNX reader) parses; nothing is
//! encoded by hand.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Opset of every generated model: 17 has `LayerNormalization`, and tract and
/// onnxruntime both support it fully.
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17.
const IR_VERSION: i64 = 8;
/// The symbolic batch dimension every generated model declares.
pub const BATCH_DIM: &str = "N";

/// One dimension of a graph input or output: the batch symbol or a size.
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    /// The symbolic batch dimension [`BATCH_DIM`].
    Batch,
    /// A fixed size.
    Fixed(i64),
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
}

/// Builds one graph; weights come from a seeded generator, so the same seed gives
/// byte-identical files.
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    rng: Xoshiro256PlusPlus,
    next_id: usize,
    parameters: u64,
}

impl GraphBuilder {
    /// An empty graph whose weights draw from `seed`.
    pub fn new(seed: u64) -> Self {
        GraphBuilder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            next_id: 0,
            parameters: 0,
        }
    }

    /// Trainable parameters added so far (weights and biases; not batch-norm
    /// running statistics, not index constants), as frameworks count them.
    pub fn parameters(&self) -> u64 {
        self.parameters
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares `value` a graph output.
    pub fn output(&mut self, value: &str, elem: DataType, dims: &[Dim]) {
        self.outputs.push(value_info(value, elem, dims));
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.next_id += 1;
        format!("{stem}_{}", self.next_id)
    }

    /// A trainable f32 weight drawn uniformly from `[-bound, bound]`.
    pub fn uniform(&mut self, stem: &str, dims: &[i64], bound: f32) -> String {
        let n: i64 = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                // 24 random bits give every representable step of [0, 1) in f32.
                let u = (self.rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
                (2.0 * u - 1.0) * bound
            })
            .collect();
        self.parameters += n as u64;
        self.f32_tensor(stem, dims, &values)
    }

    /// A trainable f32 weight with every element `value` (biases, norm scales).
    pub fn filled(&mut self, stem: &str, dims: &[i64], value: f32) -> String {
        let n: i64 = dims.iter().product();
        self.parameters += n as u64;
        self.f32_tensor(stem, dims, &vec![value; n as usize])
    }

    /// A constant f32 tensor that is not a parameter (running statistics, scalars).
    pub fn constant_f32(&mut self, stem: &str, dims: &[i64], values: &[f32]) -> String {
        self.f32_tensor(stem, dims, values)
    }

    /// A constant i64 tensor (shapes, axes, indices); not a parameter.
    pub fn constant_i64(&mut self, stem: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: DataType::Int64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn f32_tensor(&mut self, stem: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a node with one output; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
        out
    }

    /// The finished model.
    pub fn finish(self, name: &str, doc: &str) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "ecoedge-models".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: name.into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam(BATCH_DIM.into()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

fn attribute(name: &str, attr: &Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    match attr {
        Attr::Int(i) => {
            a.r#type = AttributeType::Int as i32;
            a.i = *i;
        }
        Attr::Ints(v) => {
            a.r#type = AttributeType::Ints as i32;
            a.ints = v.clone();
        }
        Attr::Float(f) => {
            a.r#type = AttributeType::Float as i32;
            a.f = *f;
        }
    }
    a
}
