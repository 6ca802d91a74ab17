//! Saving and loading an [`ExemplarIndex`] as one safetensors file.
//!
//! The file holds the unit vectors (`vectors`, F32 `[n, dim]`), each
//! exemplar's group number (`groups`, U32 `[n]`), and in the header metadata
//! the group names and the [`IndexParams`]. The HNSW graphs are rebuilt on
//! load: that takes seconds for tens of thousands of exemplars, and keeps the
//! file independent of hnsw_rs's dump format and its borrowed-data lifetimes.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{unit, ExemplarIndex, IndexError, IndexParams};

/// Name of the index file inside the directory given to save / load.
pub const INDEX_FILE: &str = "exemplars.safetensors";

const FORMAT_KEY: &str = "format";
const FORMAT: &str = "kefu-exemplar-index-v1";
const GROUPS_KEY: &str = "groups";
const PARAMS_KEY: &str = "params";
const VECTORS_TENSOR: &str = "vectors";
const GROUPS_TENSOR: &str = "groups";

impl ExemplarIndex {
    /// Writes the index to `dir/`[`INDEX_FILE`], creating `dir` if needed.
    /// The file is written under a temporary name and renamed into place, so
    /// a crash mid-save leaves any previous index intact.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        let path = dir.join(INDEX_FILE);
        let io = |source| IndexError::Io { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;

        let vector_bytes: Vec<u8> = self.vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
        let group_bytes: Vec<u8> = self.group_of.iter().flat_map(|g| g.to_le_bytes()).collect();
        let corrupt = |e: safetensors::SafeTensorError| IndexError::Corrupt {
            path: path.display().to_string(),
            reason: format!("cannot serialise: {e}"),
        };
        let vectors = TensorView::new(Dtype::F32, vec![self.len(), self.dim], &vector_bytes).map_err(corrupt)?;
        let groups = TensorView::new(Dtype::U32, vec![self.len()], &group_bytes).map_err(corrupt)?;
        let metadata = HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT.to_string()),
            (GROUPS_KEY.to_string(), json(&self.group_names)),
            (PARAMS_KEY.to_string(), json(&self.params)),
        ]);
        let bytes = safetensors::serialize([(VECTORS_TENSOR, vectors), (GROUPS_TENSOR, groups)], &Some(metadata))
            .map_err(corrupt)?;

        crate::support::fs::write_atomically(&path, &bytes)
            .map_err(|e| IndexError::Io { path: e.path.display().to_string(), source: e.source })
    }

    /// Reads `dir/`[`INDEX_FILE`] and rebuilds the graphs with the saved
    /// parameters. A missing, truncated or inconsistent file is an error that
    /// names the file.
    pub fn load(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(INDEX_FILE);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| IndexError::Io { path: shown.clone(), source })?;
        let corrupt = |reason: String| IndexError::Corrupt { path: shown.clone(), reason };

        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(format!("bad header: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| meta.get(key).ok_or_else(|| corrupt(format!("metadata has no `{key}`")));
        if field(FORMAT_KEY)? != FORMAT {
            return Err(corrupt(format!("unknown format {:?}, expected {FORMAT:?}", meta[FORMAT_KEY])));
        }
        let group_names: Vec<String> =
            serde_json::from_str(field(GROUPS_KEY)?).map_err(|e| corrupt(format!("bad group names: {e}")))?;
        let params: IndexParams =
            serde_json::from_str(field(PARAMS_KEY)?).map_err(|e| corrupt(format!("bad parameters: {e}")))?;

        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("bad tensors: {e}")))?;
        let vectors = tensors.tensor(VECTORS_TENSOR).map_err(|e| corrupt(format!("tensor `{VECTORS_TENSOR}`: {e}")))?;
        let groups = tensors.tensor(GROUPS_TENSOR).map_err(|e| corrupt(format!("tensor `{GROUPS_TENSOR}`: {e}")))?;
        let (n, dim) = match (vectors.dtype(), vectors.shape()) {
            (Dtype::F32, &[n, dim]) => (n, dim),
            (dtype, shape) => {
                return Err(corrupt(format!("`{VECTORS_TENSOR}` is {dtype:?} {shape:?}, expected F32 [n, dim]")))
            }
        };
        if groups.dtype() != Dtype::U32 || groups.shape() != [n] {
            return Err(corrupt(format!(
                "`{GROUPS_TENSOR}` is {:?} {:?}, expected U32 [{n}]",
                groups.dtype(),
                groups.shape()
            )));
        }

        let mut index = ExemplarIndex::new(dim, params).map_err(|e| corrupt(e.to_string()))?;
        for (id, row) in vectors.data().chunks_exact(4 * dim).enumerate() {
            let v: Vec<f32> = row.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            // Validate like any input, but keep the stored values: they are
            // unit vectors already, and renormalising would move the last bit.
            unit(&v, dim, || format!("#{id}")).map_err(|e| corrupt(e.to_string()))?;
            index.vectors.extend(v);
        }
        for b in groups.data().chunks_exact(4) {
            let g = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if g as usize >= group_names.len() {
                return Err(corrupt(format!("group number {g} but only {} groups", group_names.len())));
            }
            index.group_of.push(g);
        }
        for name in group_names {
            if index.group_ids.contains_key(&name) {
                return Err(corrupt(format!("group {name:?} listed twice")));
            }
            index.intern_group(name);
        }
        index.rebuild_graphs();
        Ok(index)
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // NOTE: serialising a Vec<String> or plain struct to JSON cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}
