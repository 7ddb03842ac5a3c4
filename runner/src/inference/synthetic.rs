//! Synthetic requests for `run`: one plain tensor per model input at the
//! largest batch, drawn once from a seed at load, so the timed path holds
//! nothing but inference and every engine gets the same values for the same
//! seed (a batch of `b` takes the first `b` rows).

use anyhow::Result;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::InputKind;
use super::InputSpec;
use super::tensor::{DataType, Tensor};

/// Synthetic inputs at batch `max`, drawn from `seed`, in the order of
/// `specs`: features uniform in `[0, 1)`, token ids below the vocabulary,
/// masks of ones, token types of zeros.
pub fn synthesise(specs: &[InputSpec], max: usize, seed: u64) -> Result<Vec<Tensor>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    specs
        .iter()
        .map(|spec| {
            let mut shape = vec![max];
            shape.extend(&spec.shape);
            let n: usize = shape.iter().product();
            let values: Vec<f64> = match spec.kind {
                // Drawn as f32 whatever the input's float width: the values
                // are the same as before inputs were plain tensors.
                InputKind::Features => (0..n).map(|_| f64::from(rng.random::<f32>())).collect(),
                InputKind::TokenIds { vocab } => (0..n)
                    .map(|_| rng.random_range(0..vocab.max(1)) as f64)
                    .collect(),
                InputKind::Mask => vec![1.0; n],
                InputKind::Zeros => vec![0.0; n],
            };
            encode(spec, shape, &values)
        })
        .collect()
}

/// `values` as a tensor of `spec`'s element type (exact for the values
/// synthetic inputs hold; f16 rounds).
fn encode(spec: &InputSpec, shape: Vec<usize>, values: &[f64]) -> Result<Tensor> {
    let d = spec.datatype;
    let mut data = Vec::with_capacity(values.len() * d.size());
    for &v in values {
        match d {
            DataType::Bool => data.push(u8::from(v != 0.0)),
            DataType::U8 => data.push(v as u8),
            DataType::I8 => data.extend((v as i8).to_le_bytes()),
            DataType::U16 => data.extend((v as u16).to_le_bytes()),
            DataType::I16 => data.extend((v as i16).to_le_bytes()),
            DataType::U32 => data.extend((v as u32).to_le_bytes()),
            DataType::I32 => data.extend((v as i32).to_le_bytes()),
            DataType::U64 => data.extend((v as u64).to_le_bytes()),
            DataType::I64 => data.extend((v as i64).to_le_bytes()),
            DataType::F16 => data.extend(tract_onnx::prelude::f16::from_f64(v).to_le_bytes()),
            DataType::F32 => data.extend((v as f32).to_le_bytes()),
            DataType::F64 => data.extend(v.to_le_bytes()),
        }
    }
    Tensor::new(d, shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, datatype: DataType, kind: InputKind) -> InputSpec {
        InputSpec {
            name: name.into(),
            datatype,
            shape: vec![3],
            kind,
        }
    }

    #[test]
    fn inputs_are_drawn_by_kind_and_seed() {
        let specs = [
            spec("x", DataType::F32, InputKind::Features),
            spec("ids", DataType::I32, InputKind::TokenIds { vocab: 7 }),
            spec("mask", DataType::I64, InputKind::Mask),
        ];
        let a = synthesise(&specs, 2, 5).unwrap();
        assert_eq!(a, synthesise(&specs, 2, 5).unwrap());
        assert_ne!(a, synthesise(&specs, 2, 6).unwrap());
        assert_eq!(a[0].shape, vec![2, 3]);
        assert!(
            a[0].to_f32()
                .unwrap()
                .iter()
                .all(|v| (0.0..1.0).contains(v))
        );
        let ids: Vec<i32> = a[1]
            .data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(ids.iter().all(|id| (0..7).contains(id)), "{ids:?}");
        assert_eq!(a[2].data, [1u8, 0, 0, 0, 0, 0, 0, 0].repeat(6));
    }
}
