//! A synthetic platform for the blast-radius benchmarks (`cargo bench -p
//! renkei-registry --bench blast_radius` and `renkei bench`), seeded so
//! every run sees the same graph: about one organisation per 100 systems,
//! each a cluster of systems linked mostly downstream inside the cluster;
//! one platform per 20 organisations with 20 shared components (hubs)
//! linked to and from the member clusters; a few partner links; every link
//! carries one to three incident categories.

use rand::Rng as _;
use rand::rngs::StdRng;
use uuid::Uuid;

use crate::domain::{Lifecycle, SystemNode};

/// Relative weights of the six categories (in `Category::ALL` order:
/// malware, unauthorized_access, data_leak, denial_of_service, outage,
/// other) on each kind of generated link.
const INTRA_WEIGHTS: [u32; 6] = [30, 25, 10, 12, 18, 5];
const HUB_TO_MEMBER_WEIGHTS: [u32; 6] = [25, 15, 10, 20, 25, 5];
const MEMBER_TO_HUB_WEIGHTS: [u32; 6] = [20, 35, 20, 5, 5, 15];
const HUB_TO_HUB_WEIGHTS: [u32; 6] = [25, 20, 10, 20, 20, 5];
const PARTNER_WEIGHTS: [u32; 6] = [25, 25, 20, 5, 10, 15];

/// The generated platform, by slot (`0..systems`).
pub struct Platform {
    pub nodes: Vec<SystemNode>,
    /// (from slot, to slot, category mask: bit `i` is `Category::ALL[i]`)
    pub links: Vec<(u32, u32, u8)>,
    /// Organisations, platform operators included.
    pub orgs: usize,
    pub platforms: usize,
    /// Shared platform components.
    pub hubs: usize,
}

struct Org {
    primary: usize,
    start: usize,
    len: usize,
}

impl Org {
    /// The cluster's entry systems: the first tenth, where links from the
    /// platform's components land and links to them leave from.
    fn entries(&self) -> usize {
        (self.len / 10).max(1)
    }
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random::<u128>().to_le_bytes()).into_uuid()
}

/// One category (70 %), two (25 %) or three (5 %), drawn by weight.
fn pick_mask(rng: &mut StdRng, weights: &[u32; 6]) -> u8 {
    let total: u32 = weights.iter().sum();
    let wanted = match rng.random_range(0..100) {
        0..70 => 1,
        70..95 => 2,
        _ => 3,
    };
    let mut mask = 0u8;
    while mask.count_ones() < wanted {
        let mut x = rng.random_range(0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                mask |= 1 << i;
                break;
            }
            x -= w;
        }
    }
    mask
}

/// A platform of `systems` systems and `links` links drawn from `rng` (the
/// same seed, the same platform).
pub fn generate(systems: usize, links: usize, rng: &mut StdRng) -> Platform {
    let org_count = (systems / 100).max(4);
    let platform_count = (org_count / 20).max(1);
    let hubs_per_platform = 20.min(systems / (10 * platform_count)).max(2);
    let hub_count = platform_count * hubs_per_platform;
    let member_orgs = org_count - platform_count;
    let members = systems - hub_count;

    let ids: Vec<Uuid> = (0..systems).map(|_| random_uuid(rng)).collect();
    let platform_ids: Vec<Uuid> = (0..platform_count).map(|_| random_uuid(rng)).collect();
    let operator_ids: Vec<Uuid> = (0..platform_count).map(|_| random_uuid(rng)).collect();
    let org_ids: Vec<Uuid> = (0..member_orgs).map(|_| random_uuid(rng)).collect();

    // cluster sizes vary about 20-fold; boundaries from cumulative weights
    let weights: Vec<f64> = (0..member_orgs)
        .map(|_| (0.3 + rng.random::<f64>()).powi(2))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut orgs = Vec::with_capacity(member_orgs);
    let mut cumulative = 0.0;
    let mut start = hub_count;
    for w in &weights {
        cumulative += w;
        let end = hub_count + ((cumulative / total) * members as f64).round() as usize;
        let end = end.min(systems);
        orgs.push(Org {
            primary: rng.random_range(0..platform_count),
            start,
            len: end - start,
        });
        start = end;
    }
    if let Some(last) = orgs.last_mut() {
        last.len = systems - last.start;
    }
    // which organisations each platform serves: those homed on it, and one in
    // ten organisations also uses a second platform (downstream of it only)
    let mut served: Vec<Vec<usize>> = vec![Vec::new(); platform_count];
    let mut homed: Vec<Vec<usize>> = vec![Vec::new(); platform_count];
    let mut org_of = vec![usize::MAX; systems];
    for (o, org) in orgs.iter().enumerate() {
        served[org.primary].push(o);
        homed[org.primary].push(o);
        if platform_count > 1 && rng.random_bool(0.1) {
            let mut other = rng.random_range(0..platform_count - 1);
            if other >= org.primary {
                other += 1;
            }
            served[other].push(o);
        }
        org_of[org.start..org.start + org.len].fill(o);
    }

    let mut nodes = Vec::with_capacity(systems);
    for (slot, id) in ids.iter().enumerate() {
        let (owner_org_id, platform_id) = if slot < hub_count {
            let p = slot / hubs_per_platform;
            (operator_ids[p], platform_ids[p])
        } else {
            let o = org_of[slot];
            (org_ids[o], platform_ids[orgs[o].primary])
        };
        nodes.push(SystemNode {
            id: *id,
            owner_org_id,
            platform_id,
            lifecycle: Lifecycle::Active,
        });
    }

    let hub = |p: usize, i: usize| (p * hubs_per_platform + i) as u32;
    let mut out: Vec<(u32, u32, u8)> = Vec::with_capacity(links);
    let hub_to_hub = links / 100;
    let hub_to_member = links / 10;
    let member_to_hub = links * 3 / 100;
    let partner = links * 3 / 1000;
    let intra = links - hub_to_hub - hub_to_member - member_to_hub - partner;

    // platform components depend on each other
    for _ in 0..hub_to_hub {
        let p = rng.random_range(0..platform_count);
        let a = rng.random_range(0..hubs_per_platform);
        let b = (a + rng.random_range(1..hubs_per_platform)) % hubs_per_platform;
        out.push((hub(p, a), hub(p, b), pick_mask(rng, &HUB_TO_HUB_WEIGHTS)));
    }
    // platform components serve the entry systems of their own clusters, and
    // other systems of a cluster that uses the platform as its second one
    while out.len() < hub_to_hub + hub_to_member {
        let p = rng.random_range(0..platform_count);
        if served[p].is_empty() {
            continue;
        }
        let org = &orgs[served[p][rng.random_range(0..served[p].len())]];
        let to = if org.primary == p || org.len <= org.entries() {
            org.start + rng.random_range(0..org.entries())
        } else {
            org.start + rng.random_range(org.entries()..org.len)
        };
        out.push((
            hub(p, rng.random_range(0..hubs_per_platform)),
            to as u32,
            pick_mask(rng, &HUB_TO_MEMBER_WEIGHTS),
        ));
    }
    // a cluster's entry systems feed back into its own platform's components
    for _ in 0..member_to_hub {
        let org = &orgs[org_of[rng.random_range(hub_count..systems)]];
        let from = org.start + rng.random_range(0..org.entries());
        let to = hub(org.primary, rng.random_range(0..hubs_per_platform));
        out.push((from as u32, to, pick_mask(rng, &MEMBER_TO_HUB_WEIGHTS)));
    }
    // a few partner links between organisations on the same platform
    for _ in 0..partner {
        let from = rng.random_range(hub_count..systems);
        let peers = &homed[orgs[org_of[from]].primary];
        let other = &orgs[peers[rng.random_range(0..peers.len())]];
        let to = other.start + rng.random_range(0..other.len);
        out.push((from as u32, to as u32, pick_mask(rng, &PARTNER_WEIGHTS)));
    }
    // inside a cluster: mostly downstream, plus short links back (cycles)
    while out.len() < links {
        let org = &orgs[org_of[rng.random_range(hub_count..systems)]];
        if org.len < 2 {
            continue;
        }
        let (from, to) = if rng.random_bool(0.03) {
            let i = rng.random_range(1..org.len);
            (i, i - rng.random_range(1..=i.min(5)))
        } else {
            let i = rng.random_range(0..org.len - 1);
            (i, rng.random_range(i + 1..org.len))
        };
        out.push((
            (org.start + from) as u32,
            (org.start + to) as u32,
            pick_mask(rng, &INTRA_WEIGHTS),
        ));
    }
    debug_assert_eq!(
        out.len(),
        hub_to_hub + hub_to_member + member_to_hub + partner + intra
    );

    Platform {
        nodes,
        links: out,
        orgs: org_count,
        platforms: platform_count,
        hubs: hub_count,
    }
}

/// The id of the `i`-th generated link (stable across runs).
pub fn link_id(i: usize) -> Uuid {
    Uuid::from_u64_pair(0xb1a5_7000_0000_0000, i as u64)
}
