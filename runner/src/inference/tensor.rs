//! Plain tensors: a datatype, a shape and little-endian bytes, the way the
//! KServe v2 protocol carries them and any engine can take them, so nothing
//! above an engine sees that engine's own tensor type.

use std::fmt;

use anyhow::{Result, bail};
use serde::Serialize;

/// Element types, named as the KServe v2 protocol names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`, one byte per element.
    Bool,
    /// `UINT8`.
    U8,
    /// `UINT16`.
    U16,
    /// `UINT32`.
    U32,
    /// `UINT64`.
    U64,
    /// `INT8`.
    I8,
    /// `INT16`.
    I16,
    /// `INT32`.
    I32,
    /// `INT64`.
    I64,
    /// `FP16` (IEEE 754 half).
    F16,
    /// `FP32`.
    F32,
    /// `FP64`.
    F64,
}

impl DataType {
    /// Every datatype, for error messages and tests.
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
    ];

    /// The protocol's name (`FP32`, `INT64`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
        }
    }

    /// The datatype the protocol calls `name`.
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense tensor in row-major order, elements little-endian.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.product() * datatype.size()` bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// A tensor of `data` with `shape`, checked to hold exactly the bytes the
    /// shape needs.
    pub fn new(datatype: DataType, shape: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        let want = elements(&shape)
            .and_then(|n| n.checked_mul(datatype.size()))
            .ok_or_else(|| anyhow::anyhow!("shape {shape:?} is too large"))?;
        if data.len() != want {
            bail!(
                "{} tensor of shape {shape:?} needs {want} bytes, got {}",
                datatype,
                data.len()
            );
        }
        Ok(Tensor {
            datatype,
            shape,
            data,
        })
    }

    /// An `f32` tensor (tests, synthetic inputs).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(DataType::F32, shape, data)
    }

    /// The elements as `f32`, for FP32 tensors.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.datatype == DataType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Bytes of one slice along the first axis.
    pub fn row_bytes(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>() * self.datatype.size()
    }
}

/// A tensor the model takes or gives, per sample (the batch axis left out).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The tensor's name in the graph.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape of one sample.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// The metadata entry: the shape with -1 for the batch dimension.
    pub fn metadata(&self) -> TensorMetadata {
        TensorMetadata {
            name: self.name.clone(),
            datatype: self.datatype.name(),
            shape: std::iter::once(-1)
                .chain(self.shape.iter().map(|&d| d as i64))
                .collect(),
        }
    }
}

impl fmt::Display for TensorSpec {
    /// `input_ids: INT64[N, 128]`: N is the batch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[N", self.name, self.datatype)?;
        for d in &self.shape {
            write!(f, ", {d}")?;
        }
        f.write_str("]")
    }
}

/// `$metadata_tensor` of the protocol.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorMetadata {
    /// Name.
    pub name: String,
    /// Datatype name.
    pub datatype: &'static str,
    /// Shape, -1 for the batch dimension.
    pub shape: Vec<i64>,
}

/// Number of elements of `shape`, `None` on overflow.
pub fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes_fit() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_name(d.name()), Some(d));
        }
        assert_eq!(DataType::from_name("FLOAT"), None);
        assert_eq!(DataType::F16.size(), 2);
        assert_eq!(DataType::I64.size(), 8);
    }

    #[test]
    fn tensors_hold_exactly_their_shape() {
        let t = Tensor::from_f32(vec![2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(t.row_bytes(), 12);
        assert_eq!(t.to_f32().unwrap()[4], 4.0);
        let err = Tensor::new(DataType::I64, vec![2], vec![0; 15]).unwrap_err();
        assert!(err.to_string().contains("needs 16 bytes, got 15"), "{err}");
        assert!(Tensor::new(DataType::U8, vec![usize::MAX, 2], vec![]).is_err());
    }
}
