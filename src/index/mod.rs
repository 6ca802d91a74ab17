//! Exemplar index: approximate nearest-neighbour search over unit-length
//! exemplar embeddings, one HNSW graph per group (a group is a scenario name)
//! plus one graph over every exemplar.
//!
//! The index owns the exemplar vectors and their groups; ids are positions in
//! insertion order, so callers keep their exemplar metadata in a plain `Vec`
//! indexed by [`Hit::id`]. Persistence (see [`persist`]) stores only the
//! vectors and groups and rebuilds the graphs on load, so the file format does
//! not depend on hnsw_rs internals.

mod persist;

use std::collections::HashMap;

use hnsw_rs::prelude::{DistDot, Hnsw};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use persist::INDEX_FILE;

/// Errors raised while building, extending, searching, saving or loading an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector (or query) does not have the index dimension.
    #[error("vector {what} has dimension {got}, the index expects {expected}")]
    DimensionMismatch {
        /// Which vector: "#<id>" for an exemplar, "query" for a query.
        what: String,
        /// The index dimension.
        expected: usize,
        /// The offending vector's length.
        got: usize,
    },
    /// A vector contains NaN or an infinity.
    #[error("vector {what} contains a non-finite value")]
    NonFinite {
        /// Which vector: "#<id>" for an exemplar, "query" for a query.
        what: String,
    },
    /// A vector has zero length, so it has no direction to compare.
    #[error("vector {what} is all zeros")]
    ZeroVector {
        /// Which vector: "#<id>" for an exemplar, "query" for a query.
        what: String,
    },
    /// `build` got a different number of vectors and groups.
    #[error("{vectors} vectors but {groups} groups")]
    LengthMismatch {
        /// Number of vectors given.
        vectors: usize,
        /// Number of groups given.
        groups: usize,
    },
    /// The index parameters are outside what hnsw_rs accepts.
    #[error("invalid index parameters: {0}")]
    InvalidParams(String),
    /// Reading or writing an index file failed.
    #[error("index file {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An index file exists but its content is not a valid index.
    #[error("index file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file involved.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// HNSW construction and search parameters.
///
/// The defaults give recall@10 of 1.0 on 10k clustered unit vectors of
/// dimension 384 (the shape of sentence embeddings). Uniformly random unit
/// vectors, which have no neighbourhood structure, need far more effort
/// (about `ef_search` 512 with 24 connections for 0.99 at 10k).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexParams {
    /// Neighbours kept per node and layer (layer 0 keeps twice as many); 2..=255.
    pub max_connections: usize,
    /// Candidate list size while inserting; higher builds a better graph, slower.
    pub ef_construction: usize,
    /// Candidate list size while searching; raised to `k` when `k` is larger.
    pub ef_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        Self { max_connections: 16, ef_construction: 100, ef_search: 64 }
    }
}

impl IndexParams {
    fn validate(&self) -> Result<(), IndexError> {
        // NOTE: hnsw_rs calls process::exit above 256 connections, so the
        // bound must be checked here rather than left to the library.
        if !(2..=255).contains(&self.max_connections) {
            return Err(IndexError::InvalidParams(format!(
                "max_connections must be in 2..=255, got {}",
                self.max_connections
            )));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(IndexError::InvalidParams("ef_construction and ef_search must be positive".into()));
        }
        Ok(())
    }
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Position of the exemplar in insertion order (build order, then `add`s).
    pub id: usize,
    /// Cosine similarity between the query and the exemplar, in [-1, 1].
    pub similarity: f32,
}

// NOTE: DistDot returns 1 - dot and asserts the result is >= 0 with no
// tolerance. Two unit vectors rounded to f32 can have a dot product of
// 1 + 1e-7 (a query equal to a stored exemplar does), which would panic inside
// a search. Every vector handed to hnsw_rs is therefore shrunk by SHRINK, so
// dot products stay below SHRINK^2 < 1 by far more than f32 rounding error;
// similarities are divided by SHRINK^2 on the way out.
const SHRINK: f32 = 0.999;
const SHRINK_SQ: f32 = SHRINK * SHRINK;

/// hnsw_rs caps the number of layers at 16; asking for the cap lets it size
/// the hierarchy from the data.
const MAX_LAYERS: usize = 16;

type Graph = Hnsw<'static, f32, DistDot>;

/// Nearest-neighbour index over unit-normalised exemplar embeddings,
/// filterable by group.
///
/// Searching takes `&self` and the index is `Send + Sync`, so one index behind
/// an `Arc` serves concurrent requests. Inputs need not be normalised: every
/// vector is scaled to unit length on the way in, so similarities are cosines.
pub struct ExemplarIndex {
    params: IndexParams,
    dim: usize,
    /// Unit vectors, row-major, `dim` floats per exemplar.
    vectors: Vec<f32>,
    /// Group number of each exemplar (index into `group_names`).
    group_of: Vec<u32>,
    group_names: Vec<String>,
    group_ids: HashMap<String, u32>,
    /// One graph per group, in `group_names` order.
    group_graphs: Vec<Graph>,
    /// Graph over every exemplar, for searches without a group.
    all: Graph,
}

impl std::fmt::Debug for ExemplarIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExemplarIndex")
            .field("params", &self.params)
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("groups", &self.group_names)
            .finish()
    }
}

impl ExemplarIndex {
    /// Creates an empty index for vectors of dimension `dim`.
    pub fn new(dim: usize, params: IndexParams) -> Result<Self, IndexError> {
        params.validate()?;
        if dim == 0 {
            return Err(IndexError::InvalidParams("dimension must be positive".into()));
        }
        Ok(Self {
            params,
            dim,
            vectors: Vec::new(),
            group_of: Vec::new(),
            group_names: Vec::new(),
            group_ids: HashMap::new(),
            group_graphs: Vec::new(),
            all: new_graph(&params, 0),
        })
    }

    /// Builds an index over `vectors`, where `groups[i]` is the group of
    /// `vectors[i]` and `i` becomes its id. The dimension is taken from the
    /// first vector; an empty input is rejected because it has no dimension
    /// (use [`ExemplarIndex::new`] for an empty index).
    ///
    /// Every vector is validated before any graph is built. Each graph takes
    /// its points one by one, in id order, so the same input always gives the
    /// same graphs (hnsw_rs's parallel insertion does not); the graphs
    /// themselves are built side by side on the rayon pool.
    pub fn build(vectors: Vec<Vec<f32>>, groups: Vec<String>, params: IndexParams) -> Result<Self, IndexError> {
        if vectors.len() != groups.len() {
            return Err(IndexError::LengthMismatch { vectors: vectors.len(), groups: groups.len() });
        }
        let dim = match vectors.first() {
            Some(v) => v.len(),
            None => {
                return Err(IndexError::InvalidParams(
                    "cannot build from zero vectors: the dimension is unknown".into(),
                ))
            }
        };
        let mut index = Self::new(dim, params)?;
        let mut flat = Vec::with_capacity(vectors.len() * dim);
        for (id, v) in vectors.iter().enumerate() {
            flat.extend(unit(v, dim, || format!("#{id}"))?);
        }
        index.vectors = flat;
        for group in groups {
            let g = index.intern_group(group);
            index.group_of.push(g);
        }
        index.rebuild_graphs();
        Ok(index)
    }

    /// Inserts one exemplar into a live index and returns its id (the
    /// previous `len()`). It is visible to searches as soon as this returns.
    pub fn add(&mut self, vector: Vec<f32>, group: String) -> Result<usize, IndexError> {
        let id = self.len();
        let v = unit(&vector, self.dim, || format!("#{id}"))?;
        let g = self.intern_group(group);
        let shrunk: Vec<f32> = v.iter().map(|x| x * SHRINK).collect();
        self.all.insert_slice((&shrunk, id));
        self.group_graphs[g as usize].insert_slice((&shrunk, id));
        self.vectors.extend(v);
        self.group_of.push(g);
        Ok(id)
    }

    /// Returns up to `k` exemplars most similar to `query`, best first.
    ///
    /// With `group` set, only exemplars of that group are searched; a group
    /// with no exemplars (including a name never seen) yields an empty list,
    /// since "no exemplar is close" is the honest answer for it. The query is
    /// normalised like the exemplars; a wrong dimension, a non-finite value or
    /// an all-zero query is an error rather than a panic.
    pub fn search(&self, query: &[f32], k: usize, group: Option<&str>) -> Result<Vec<Hit>, IndexError> {
        let q: Vec<f32> = unit(query, self.dim, || "query".to_string())?.into_iter().map(|x| x * SHRINK).collect();
        let graph = match group {
            None => &self.all,
            Some(name) => match self.group_ids.get(name) {
                Some(&g) => &self.group_graphs[g as usize],
                None => return Ok(Vec::new()),
            },
        };
        if k == 0 || graph.get_nb_point() == 0 {
            return Ok(Vec::new());
        }
        let ef = self.params.ef_search.max(k);
        let mut hits: Vec<Hit> = graph
            .search(&q, k, ef)
            .into_iter()
            .map(|n| Hit { id: n.d_id, similarity: ((1.0 - n.distance) / SHRINK_SQ).clamp(-1.0, 1.0) })
            .collect();
        // hnsw_rs returns neighbours sorted already; sorting again makes the
        // "best first" contract independent of that implementation detail.
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        Ok(hits)
    }

    /// Number of exemplars.
    pub fn len(&self) -> usize {
        self.group_of.len()
    }

    /// True when the index holds no exemplar.
    pub fn is_empty(&self) -> bool {
        self.group_of.is_empty()
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Parameters the index was built with.
    pub fn params(&self) -> IndexParams {
        self.params
    }

    /// The unit-normalised vector of exemplar `id`. Panics if `id >= len()`,
    /// like slice indexing: ids only come from this index.
    pub fn vector(&self, id: usize) -> &[f32] {
        &self.vectors[id * self.dim..(id + 1) * self.dim]
    }

    /// The group of exemplar `id`. Panics if `id >= len()`.
    pub fn group(&self, id: usize) -> &str {
        &self.group_names[self.group_of[id] as usize]
    }

    /// Group names in order of first appearance.
    pub fn groups(&self) -> &[String] {
        &self.group_names
    }

    /// Number of exemplars in `group` (0 for an unknown group).
    pub fn group_len(&self, group: &str) -> usize {
        self.group_ids.get(group).map_or(0, |&g| self.group_graphs[g as usize].get_nb_point())
    }

    /// Returns the group number, creating the group and its graph on first use.
    fn intern_group(&mut self, name: String) -> u32 {
        if let Some(&g) = self.group_ids.get(&name) {
            return g;
        }
        let g = self.group_names.len() as u32;
        self.group_ids.insert(name.clone(), g);
        self.group_names.push(name);
        self.group_graphs.push(new_graph(&self.params, 0));
        g
    }

    /// Builds every graph from `vectors` and `group_of`, replacing the
    /// (empty) graphs created so far.
    fn rebuild_graphs(&mut self) {
        let n = self.len();
        let shrunk: Vec<f32> = self.vectors.iter().map(|x| x * SHRINK).collect();
        let rows: Vec<(&[f32], usize)> = shrunk.chunks_exact(self.dim).zip(0..n).collect();
        let mut members: Vec<Vec<(&[f32], usize)>> = vec![Vec::new(); self.group_names.len()];
        for &(row, id) in &rows {
            members[self.group_of[id] as usize].push((row, id));
        }
        let params = &self.params;
        let build = |points: &[(&[f32], usize)]| {
            let graph = new_graph(params, points.len());
            points.iter().for_each(|&point| graph.insert_slice(point));
            graph
        };
        let (all, group_graphs) = rayon::join(|| build(&rows), || members.par_iter().map(|m| build(m)).collect());
        self.all = all;
        self.group_graphs = group_graphs;
    }
}

fn new_graph(params: &IndexParams, capacity: usize) -> Graph {
    Hnsw::new(params.max_connections, capacity, MAX_LAYERS, params.ef_construction, DistDot)
}

/// Checks `v` and returns it scaled to unit length. Normalisation is done in
/// f64 so the result is as close to unit length as f32 allows.
fn unit(v: &[f32], dim: usize, what: impl Fn() -> String) -> Result<Vec<f32>, IndexError> {
    if v.len() != dim {
        return Err(IndexError::DimensionMismatch { what: what(), expected: dim, got: v.len() });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::NonFinite { what: what() });
    }
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(IndexError::ZeroVector { what: what() });
    }
    Ok(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

#[cfg(test)]
mod tests;
