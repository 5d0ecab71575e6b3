//! The visual form: nodes and edges for an editor, with an automatic layout.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Visual form

/// Horizontal distance between columns of automatically placed nodes.
pub(super) const COLUMN_WIDTH: f64 = 280.0;
/// Vertical distance between rows of automatically placed nodes.
pub(super) const ROW_HEIGHT: f64 = 120.0;

impl PipelineDefinition {
    /// The visual form: one `step` node per step, at its `layout` position
    /// or else placed automatically (a column per dependency depth), one
    /// `source` node per edge origin that is not a step (in the first
    /// column), and `edges` (upstream, downstream) as given.
    pub fn to_visual(&self, edges: &[(String, String)]) -> VisualDefinition {
        let is_step = |name: &str| self.steps.iter().any(|step| step.name == name);
        let mut sources: Vec<&str> = Vec::new();
        for (from, _) in edges {
            if !is_step(from.as_str()) && !sources.contains(&from.as_str()) {
                sources.push(from);
            }
        }
        let first_step_column = usize::from(!sources.is_empty());
        let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
        let mut place = |column: usize| {
            let row = rows.entry(column).or_insert(0);
            let position = Position {
                x: COLUMN_WIDTH * column as f64,
                y: ROW_HEIGHT * *row as f64,
            };
            *row += 1;
            position
        };

        let mut nodes = Vec::with_capacity(self.steps.len() + sources.len());
        for (step, depth) in self.steps.iter().zip(step_depths(&self.steps, edges)) {
            let position = match self.layout.get(&step.name) {
                Some(position) => *position,
                None => place(first_step_column + depth),
            };
            nodes.push(VisualNode {
                id: step.name.clone(),
                kind: VisualNodeKind::Step,
                position,
                step: Some(step.clone()),
            });
        }
        for source in sources {
            nodes.push(VisualNode {
                id: source.to_owned(),
                kind: VisualNodeKind::Source,
                position: place(0),
                step: None,
            });
        }

        VisualDefinition {
            description: self.description.clone(),
            params: self.params.clone(),
            nodes,
            edges: edges
                .iter()
                .map(|(from, to)| VisualEdge {
                    from: from.clone(),
                    to: to.clone(),
                })
                .collect(),
            defaults: self.defaults,
            max_parallel: self.max_parallel,
            schedule: self.schedule.clone(),
            triggers: self.triggers.clone(),
            template: self.template,
        }
    }

    /// The definition a visual form describes: the steps of its `step`
    /// nodes in node order, each node's position as the step's `layout`.
    /// A step node must carry a step of its own name and a source node none
    /// (`invalid_definition`). Edges are not read: the caller checks them
    /// against the edges the SQL implies.
    pub fn from_visual(visual: VisualDefinition) -> Result<PipelineDefinition, Vec<Diagnostic>> {
        let mut steps = Vec::new();
        let mut layout = BTreeMap::new();
        let mut problems = Vec::new();
        for node in visual.nodes {
            let id = node.id;
            match (node.kind, node.step) {
                (VisualNodeKind::Step, Some(step)) if step.name == id => {
                    layout.insert(id, node.position);
                    steps.push(step);
                }
                (VisualNodeKind::Step, Some(step)) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!(
                        "node `{id}` carries step `{}`: a step node's id is its step's name",
                        step.name
                    ),
                )),
                (VisualNodeKind::Step, None) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!("step node `{id}` carries no step"),
                )),
                (VisualNodeKind::Source, Some(_)) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!("source node `{id}` carries a step; only step nodes do"),
                )),
                (VisualNodeKind::Source, None) => {}
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(PipelineDefinition {
            description: visual.description,
            params: visual.params,
            steps,
            defaults: visual.defaults,
            max_parallel: visual.max_parallel,
            schedule: visual.schedule,
            triggers: visual.triggers,
            template: visual.template,
            layout,
        })
    }
}

/// Each step's depth: the longest chain of `edges` leading to it, bounded
/// by the number of steps (so a cycle cannot loop forever).
pub(super) fn step_depths(steps: &[Step], edges: &[(String, String)]) -> Vec<usize> {
    let index = |name: &str| steps.iter().position(|step| step.name == name);
    let links: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|(from, to)| Some((index(from.as_str())?, index(to.as_str())?)))
        .collect();
    let mut depths = vec![0; steps.len()];
    for _ in 0..steps.len() {
        let mut changed = false;
        for &(from, to) in &links {
            if depths[to] <= depths[from] && depths[from] < steps.len() {
                depths[to] = depths[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depths
}
