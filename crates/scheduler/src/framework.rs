//! Filter results and the FailedScheduling message (upstream `framework.Status`,
//! `Diagnosis` and `FitError`).

use std::borrow::Cow;
use std::collections::HashMap;

/// Highest score a score plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Message when there is no node at all (upstream `ErrNoNodesAvailable`).
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Why a node does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Preemption might help.
    Unschedulable,
    /// Preemption cannot help.
    UnschedulableAndUnresolvable,
}

/// The default plugins with a filter (their bit is used to match cluster events to the
/// plugins that rejected a pod, like upstream's queueing hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    /// NodeUnschedulable.
    NodeUnschedulable,
    /// NodeName.
    NodeName,
    /// TaintToleration.
    TaintToleration,
    /// NodeAffinity.
    NodeAffinity,
    /// NodePorts.
    NodePorts,
    /// NodeResourcesFit.
    NodeResourcesFit,
    /// PodTopologySpread.
    PodTopologySpread,
    /// InterPodAffinity.
    InterPodAffinity,
}

impl Plugin {
    /// The plugin's bit in a [`PluginSet`].
    pub const fn bit(self) -> PluginSet {
        PluginSet(1 << self as u16)
    }

    /// The plugin's name.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
        }
    }
}

/// A set of plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PluginSet(pub u16);

impl PluginSet {
    /// No plugin.
    pub const EMPTY: PluginSet = PluginSet(0);
    /// Every plugin.
    pub const ALL: PluginSet = PluginSet(u16::MAX);

    /// The union.
    pub const fn union(self, o: PluginSet) -> PluginSet {
        PluginSet(self.0 | o.0)
    }
    /// Whether the sets share a plugin.
    pub fn intersects(self, o: PluginSet) -> bool {
        self.0 & o.0 != 0
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A filter failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether preemption could help.
    pub code: Code,
    /// The plugin that failed.
    pub plugin: Plugin,
    /// The reasons shown in FailedScheduling.
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    /// An `Unschedulable` failure with one reason.
    pub fn unschedulable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: Code::Unschedulable,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    /// An `UnschedulableAndUnresolvable` failure with one reason.
    pub fn unresolvable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: Code::UnschedulableAndUnresolvable,
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// The result of a filter plugin: `Ok(())` when the node fits.
pub type FilterResult = Result<(), Status>;

/// `"0/N nodes are available: <sorted reason histogram>."` as upstream `FitError.Error()`,
/// `absent` giving the reasons of nodes without a status.
pub fn nodes_available_message<'a>(
    num_all_nodes: usize,
    statuses: impl Iterator<Item = &'a [Cow<'static, str>]>,
    absent: &[&str],
) -> String {
    let mut reasons: HashMap<&str, usize> = HashMap::new();
    let mut seen = 0usize;
    for rs in statuses {
        seen += 1;
        for r in rs {
            *reasons.entry(r.as_ref()).or_insert(0) += 1;
        }
    }
    if seen < num_all_nodes {
        for r in absent {
            *reasons.entry(r).or_insert(0) += num_all_nodes - seen;
        }
    }
    let mut list: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    list.sort();
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !list.is_empty() {
        msg.push_str(&format!(" {}.", list.join(", ")));
    }
    msg
}

/// Limit of an event message (upstream `noteLengthLimit`).
const NOTE_LENGTH_LIMIT: usize = 1024;

/// Truncates an event message as upstream's `truncateMessage`.
pub fn truncate_message(msg: &str) -> String {
    if msg.len() <= NOTE_LENGTH_LIMIT {
        return msg.to_string();
    }
    let suffix = " ...";
    let mut end = NOTE_LENGTH_LIMIT - suffix.len();
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &msg[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_sorted_as_strings() {
        let taint: Vec<Cow<'static, str>> =
            vec!["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }".into()];
        let cpu: Vec<Cow<'static, str>> = vec!["Insufficient cpu".into()];
        let msg = nodes_available_message(
            3,
            [taint.as_slice(), cpu.as_slice(), cpu.as_slice()].into_iter(),
            &[],
        );
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."
        );
        let msg = nodes_available_message(
            3,
            std::iter::empty(),
            &["Preemption is not helpful for scheduling"],
        );
        assert_eq!(
            msg,
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn truncation() {
        let long = "x".repeat(2000);
        let t = truncate_message(&long);
        assert_eq!(t.len(), 1024);
        assert!(t.ends_with(" ..."));
        assert_eq!(truncate_message("short"), "short");
    }
}
