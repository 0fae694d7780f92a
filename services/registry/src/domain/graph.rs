//! The in-memory link graph that answers blast-radius questions.
//!
//! Built from the database at start and kept current from the registry's own
//! changes, so a query is a breadth-first search over adjacency lists in
//! memory, never a recursive query. Every update is idempotent (applying the
//! same change twice leaves the same graph), so changes that arrive both from
//! this replica and from the bus are harmless.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use uuid::Uuid;

use super::link::{Category, CategorySet};
use super::system::Lifecycle;

/// What the graph knows of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemNode {
    pub id: Uuid,
    pub owner_org_id: Uuid,
    /// The platform it belongs to (a platform's own id for a platform).
    pub platform_id: Uuid,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    to: u32,
    link: Uuid,
    categories: CategorySet,
}

/// One system an incident can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub system_id: Uuid,
    pub owner_org_id: Uuid,
    pub hops: u32,
    /// From the origin to this system, both included; one shortest path.
    pub path: Vec<Uuid>,
}

/// Systems, links, and which organisation belongs to which platform.
#[derive(Debug, Default)]
pub struct GraphIndex {
    slots: FxHashMap<Uuid, u32>,
    nodes: Vec<SystemNode>,
    out: Vec<Vec<Edge>>,
    links: FxHashMap<Uuid, (u32, u32)>,
    /// org → platform → how many of the org's systems sit on it.
    membership: FxHashMap<Uuid, FxHashMap<Uuid, u32>>,
}

impl GraphIndex {
    pub fn new() -> GraphIndex {
        GraphIndex::default()
    }

    pub fn system_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Adds a system or refreshes what is known of it.
    pub fn upsert_system(&mut self, node: SystemNode) {
        match self.slots.get(&node.id) {
            Some(&slot) => {
                let old = self.nodes[slot as usize];
                if old.owner_org_id != node.owner_org_id || old.platform_id != node.platform_id {
                    self.leave(old.owner_org_id, old.platform_id);
                    self.join(node.owner_org_id, node.platform_id);
                }
                self.nodes[slot as usize] = node;
            }
            None => {
                let slot = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
                self.slots.insert(node.id, slot);
                self.nodes.push(node);
                self.out.push(Vec::new());
                self.join(node.owner_org_id, node.platform_id);
            }
        }
    }

    fn join(&mut self, org: Uuid, platform: Uuid) {
        *self
            .membership
            .entry(org)
            .or_default()
            .entry(platform)
            .or_default() += 1;
    }

    fn leave(&mut self, org: Uuid, platform: Uuid) {
        if let Some(platforms) = self.membership.get_mut(&org)
            && let Some(n) = platforms.get_mut(&platform)
        {
            *n -= 1;
            if *n == 0 {
                platforms.remove(&platform);
            }
        }
    }

    pub fn system(&self, id: Uuid) -> Option<&SystemNode> {
        self.slots.get(&id).map(|&s| &self.nodes[s as usize])
    }

    pub fn set_lifecycle(&mut self, id: Uuid, lifecycle: Lifecycle) {
        if let Some(&slot) = self.slots.get(&id) {
            self.nodes[slot as usize].lifecycle = lifecycle;
        }
    }

    /// Adds a link between two known systems (no-op if unknown or present).
    pub fn add_link(&mut self, id: Uuid, from: Uuid, to: Uuid, categories: CategorySet) {
        if self.links.contains_key(&id) {
            return;
        }
        let (Some(&f), Some(&t)) = (self.slots.get(&from), self.slots.get(&to)) else {
            return;
        };
        self.out[f as usize].push(Edge {
            to: t,
            link: id,
            categories,
        });
        self.links.insert(id, (f, t));
    }

    pub fn remove_link(&mut self, id: Uuid) {
        if let Some((f, _)) = self.links.remove(&id) {
            self.out[f as usize].retain(|e| e.link != id);
        }
    }

    /// The platforms `org` is a member of: those it operates and those its
    /// linked systems sit on.
    pub fn platforms_of(&self, org: Uuid) -> FxHashSet<Uuid> {
        self.membership
            .get(&org)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `org` is a member of `platform`.
    pub fn is_member(&self, org: Uuid, platform: Uuid) -> bool {
        self.membership
            .get(&org)
            .is_some_and(|p| p.contains_key(&platform))
    }

    /// Organisations that own a system on any of `platforms`.
    pub fn members_of(&self, platforms: &FxHashSet<Uuid>) -> FxHashSet<Uuid> {
        self.membership
            .iter()
            .filter(|(_, p)| p.keys().any(|id| platforms.contains(id)))
            .map(|(org, _)| *org)
            .collect()
    }

    /// Every system an incident of `category` on `origin` can reach over links
    /// that propagate it, nearest first; `None` if `origin` is unknown.
    /// Retired systems neither receive nor pass incidents on.
    pub fn blast_radius(&self, origin: Uuid, category: Category) -> Option<Vec<Reached>> {
        let &start = self.slots.get(&origin)?;
        // parent slot and hop count of every reached node, in BFS order
        let mut seen: FxHashMap<u32, (u32, u32)> = FxHashMap::default();
        seen.insert(start, (start, 0));
        let mut order = Vec::new();
        let mut queue = VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            let hops = seen[&at].1;
            for edge in &self.out[at as usize] {
                if !edge.categories.contains(category)
                    || seen.contains_key(&edge.to)
                    || !self.nodes[edge.to as usize].lifecycle.carries_incidents()
                {
                    continue;
                }
                seen.insert(edge.to, (at, hops + 1));
                order.push(edge.to);
                queue.push_back(edge.to);
            }
        }
        let reached = order
            .into_iter()
            .map(|slot| {
                let (_, hops) = seen[&slot];
                let mut path = Vec::with_capacity(hops as usize + 1);
                let mut at = slot;
                while at != start {
                    path.push(self.nodes[at as usize].id);
                    at = seen[&at].0;
                }
                path.push(origin);
                path.reverse();
                let node = &self.nodes[slot as usize];
                Reached {
                    system_id: node.id,
                    owner_org_id: node.owner_org_id,
                    hops,
                    path,
                }
            })
            .collect();
        Some(reached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn node(id: Uuid) -> SystemNode {
        SystemNode {
            id,
            owner_org_id: id,
            platform_id: Uuid::nil(),
            lifecycle: Lifecycle::Active,
        }
    }

    fn all() -> CategorySet {
        CategorySet::from_mask(0x3f)
    }

    #[test]
    fn cycles_and_diamonds_reach_each_system_once_at_its_shortest_distance() {
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let mut g = GraphIndex::new();
        ids.iter().for_each(|id| g.upsert_system(node(*id)));
        // diamond 0→1→3, 0→2→3, then 3→4→0 closes a cycle
        for (f, t) in [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (4, 0)] {
            g.add_link(Uuid::now_v7(), ids[f], ids[t], all());
        }
        let r = g
            .blast_radius(ids[0], Category::Malware)
            .expect("known origin");
        let hops: HashMap<Uuid, u32> = r.iter().map(|x| (x.system_id, x.hops)).collect();
        assert_eq!(hops.len(), 4, "origin excluded, each reached once");
        assert_eq!(hops[&ids[3]], 2);
        assert_eq!(hops[&ids[4]], 3);
        assert!(!hops.contains_key(&ids[0]));
    }

    #[test]
    fn retired_systems_stop_the_spread_and_removed_links_are_gone() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut g = GraphIndex::new();
        ids.iter().for_each(|id| g.upsert_system(node(*id)));
        let l = Uuid::now_v7();
        g.add_link(l, ids[0], ids[1], all());
        g.add_link(Uuid::now_v7(), ids[1], ids[2], all());
        g.set_lifecycle(ids[1], Lifecycle::Retired);
        assert!(
            g.blast_radius(ids[0], Category::Outage)
                .expect("known")
                .is_empty()
        );
        g.set_lifecycle(ids[1], Lifecycle::Active);
        assert_eq!(
            g.blast_radius(ids[0], Category::Outage)
                .expect("known")
                .len(),
            2
        );
        g.remove_link(l);
        g.remove_link(l);
        assert!(
            g.blast_radius(ids[0], Category::Outage)
                .expect("known")
                .is_empty()
        );
    }

    /// Reference: hop distances by relaxing every edge until nothing changes.
    fn naive(
        n: usize,
        edges: &[(usize, usize, u8)],
        origin: usize,
        category: Category,
    ) -> HashMap<usize, u32> {
        let mut dist: HashMap<usize, u32> = HashMap::from([(origin, 0)]);
        loop {
            let mut changed = false;
            for &(f, t, mask) in edges {
                if CategorySet::from_mask(i32::from(mask)).contains(category)
                    && let Some(&d) = dist.get(&f)
                    && dist.get(&t).is_none_or(|&old| d + 1 < old)
                {
                    dist.insert(t, d + 1);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        dist.remove(&origin);
        assert!(dist.keys().all(|&k| k < n));
        dist
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn blast_radius_matches_a_naive_reference_on_random_graphs(
            n in 2usize..40,
            raw in prop::collection::vec((0usize..40, 0usize..40, 0u8..64), 0..160),
            origin in 0usize..40,
            cat in 0usize..6,
        ) {
            let origin = origin % n;
            let category = Category::ALL[cat];
            let edges: Vec<(usize, usize, u8)> = raw.into_iter().map(|(f, t, m)| (f % n, t % n, m)).collect();
            let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
            let mut g = GraphIndex::new();
            ids.iter().for_each(|id| g.upsert_system(node(*id)));
            for &(f, t, m) in &edges {
                g.add_link(Uuid::now_v7(), ids[f], ids[t], CategorySet::from_mask(i32::from(m)));
            }
            let expected = naive(n, &edges, origin, category);
            let got = g.blast_radius(ids[origin], category).expect("known");
            let slot: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let got_hops: HashMap<usize, u32> = got.iter().map(|r| (slot[&r.system_id], r.hops)).collect();
            prop_assert_eq!(&got_hops, &expected);
            for r in &got {
                // the path is real: starts at the origin, ends here, one hop per step over a carrying link
                prop_assert_eq!(r.path.len() as u32, r.hops + 1);
                prop_assert_eq!(r.path[0], ids[origin]);
                prop_assert_eq!(*r.path.last().expect("non-empty"), r.system_id);
                for w in r.path.windows(2) {
                    let (f, t) = (slot[&w[0]], slot[&w[1]]);
                    prop_assert!(edges.iter().any(|&(a, b, m)| a == f && b == t
                        && CategorySet::from_mask(i32::from(m)).contains(category)));
                }
            }
        }
    }
}
