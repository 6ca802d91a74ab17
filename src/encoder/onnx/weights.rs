//! A `model.safetensors` file mapped read-only, read tensor by tensor as f32
//! while the graph is built. The token-embedding table is then read row by
//! row with positioned reads: its pages stay in the OS page cache, shared
//! and evictable, never in the process's own memory (mapped, the rows in use
//! and their neighbours stayed resident: 200 MB of pages on CLINC150).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;

use crate::encoder::EncoderError;

/// Where one tensor's bytes are in the map.
#[derive(Debug, Clone)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

pub(super) struct Weights {
    path: PathBuf,
    file: File,
    map: Mmap,
    entries: HashMap<String, Entry>,
}

/// A row-major f32 matrix stored in the map; rows are converted on read.
#[derive(Debug, Clone)]
pub(super) struct Table {
    entry: Entry,
    columns: usize,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.entry.shape[0]
    }
}

impl Weights {
    pub fn open(path: &Path) -> Result<Self, EncoderError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EncoderError::MissingFile(path.to_path_buf()),
            _ => EncoderError::BadFile { path: path.to_path_buf(), reason: e.to_string() },
        })?;
        // SAFETY: mapped read-only; kefu never writes into an installed model
        // directory (the importer replaces whole directories by rename).
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| EncoderError::BadFile { path: path.to_path_buf(), reason: e.to_string() })?;
        let (header, metadata) = SafeTensors::read_metadata(&map)
            .map_err(|e| EncoderError::BadFile { path: path.to_path_buf(), reason: e.to_string() })?;
        let base = 8 + header;
        let entries = metadata
            .tensors()
            .into_iter()
            .map(|(name, info): (String, &TensorInfo)| {
                let (start, end) = info.data_offsets;
                (name, Entry { dtype: info.dtype, shape: info.shape.clone(), start: base + start, end: base + end })
            })
            .collect();
        Ok(Self { path: path.to_path_buf(), file, map, entries })
    }

    /// Unmaps the file, keeping `table` readable row by row.
    pub fn into_rows(self, table: Table) -> Rows {
        Rows { path: self.path, file: self.file, table }
    }

    pub fn broken(&self, reason: impl ToString) -> EncoderError {
        EncoderError::BadFile { path: self.path.clone(), reason: reason.to_string() }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn entry(&self, name: &str) -> Result<&Entry, EncoderError> {
        self.entries.get(name).ok_or_else(|| self.broken(format!("tensor {name} is missing")))
    }

    /// A whole tensor: its shape and its values as f32.
    pub fn floats(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), EncoderError> {
        let entry = self.entry(name)?;
        let values = self.convert(entry, entry.start, entry.end)?;
        Ok((entry.shape.clone(), values))
    }

    /// A 2-D tensor to be read by rows.
    pub fn table(&self, name: &str) -> Result<Table, EncoderError> {
        let entry = self.entry(name)?.clone();
        let [_, columns] = entry.shape[..] else { return Err(self.broken(format!("{name} is not a matrix"))) };
        Ok(Table { entry, columns })
    }

    fn convert(&self, entry: &Entry, start: usize, end: usize) -> Result<Vec<f32>, EncoderError> {
        let bytes = self.map.get(start..end).ok_or_else(|| self.broken("tensor data runs past the end of the file"))?;
        decode(entry.dtype, bytes).map_err(|reason| self.broken(reason))
    }
}

/// A matrix of the weights file read one row at a time.
pub(super) struct Rows {
    path: PathBuf,
    file: File,
    table: Table,
}

impl Rows {
    /// Add row `row` into `out` (its length is the table's width).
    pub fn add_row(&self, row: usize, out: &mut [f32]) -> Result<(), EncoderError> {
        let table = &self.table;
        if row >= table.rows() {
            return Err(EncoderError::Inference(format!("token id {row} is outside the vocabulary")));
        }
        let width = table.entry.dtype.size() * table.columns;
        let mut bytes = vec![0u8; width];
        let broken = |reason: String| EncoderError::BadFile { path: self.path.clone(), reason };
        self.file
            .read_exact_at(&mut bytes, (table.entry.start + row * width) as u64)
            .map_err(|e| broken(e.to_string()))?;
        for (o, v) in out.iter_mut().zip(decode(table.entry.dtype, &bytes).map_err(broken)?) {
            *o += v;
        }
        Ok(())
    }
}

/// Little-endian `bytes` of `dtype` as f32.
fn decode(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        Dtype::F16 => Ok(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        Dtype::BF16 => Ok(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        other => Err(format!("tensor dtype {other:?} is not supported")),
    }
}
