//! Where the link graph's systems and links are drawn: platforms in the
//! middle, their linked systems on a ring around them, links as arrows
//! stopping at the circles. Pure geometry, no HTTP.

use std::collections::HashMap;

use uuid::Uuid;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 520.0;
pub const RADIUS: f64 = 22.0;

/// A system as the picture needs it.
pub struct NodeIn<'a> {
    pub id: Uuid,
    pub label: &'a str,
    pub platform: bool,
}

/// A drawn system.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: Uuid,
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub platform: bool,
    /// The chosen system of a blast radius.
    pub origin: bool,
    /// Hops from the origin, for systems the incident may spread to.
    pub hops: Option<u32>,
}

impl Node {
    /// The CSS class of the circle.
    pub fn class(&self) -> &'static str {
        match (self.origin, self.hops.is_some(), self.platform) {
            (true, _, _) => "node origin",
            (false, true, _) => "node reached",
            (false, false, true) => "node platform",
            (false, false, false) => "node",
        }
    }

    pub fn label_y(&self) -> f64 {
        self.y + RADIUS + 14.0
    }
}

/// A drawn link.
#[derive(Debug, Clone)]
pub struct Edge {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    /// Both ends are in the blast radius (or its origin).
    pub hit: bool,
}

/// Lays `nodes` and `links` (from, to) out; `origin` and `reached` (system
/// → hops) mark a blast radius. Links to systems not drawn are left out.
pub fn layout(
    nodes: &[NodeIn<'_>],
    links: &[(Uuid, Uuid)],
    origin: Option<Uuid>,
    reached: &HashMap<Uuid, u32>,
) -> (Vec<Node>, Vec<Edge>) {
    let (cx, cy) = (WIDTH / 2.0, HEIGHT / 2.0);
    let platforms: Vec<&NodeIn<'_>> = nodes.iter().filter(|n| n.platform).collect();
    let others: Vec<&NodeIn<'_>> = nodes.iter().filter(|n| !n.platform).collect();
    let mut drawn = Vec::with_capacity(nodes.len());
    let mut place = |n: &NodeIn<'_>, x: f64, y: f64| {
        drawn.push(Node {
            id: n.id,
            label: n.label.to_owned(),
            x: round(x),
            y: round(y),
            platform: n.platform,
            origin: origin == Some(n.id),
            hops: reached.get(&n.id).copied(),
        })
    };
    for (i, n) in platforms.iter().enumerate() {
        let offset = (i as f64 - (platforms.len() as f64 - 1.0) / 2.0) * 3.0 * RADIUS;
        place(n, cx + offset, cy);
    }
    let ring = (HEIGHT / 2.0 - 3.0 * RADIUS).min(WIDTH / 2.0 - 6.0 * RADIUS);
    for (i, n) in others.iter().enumerate() {
        let angle = std::f64::consts::TAU * i as f64 / others.len().max(1) as f64
            - std::f64::consts::FRAC_PI_2;
        place(n, cx + ring * angle.cos(), cy + ring * angle.sin());
    }
    let at: HashMap<Uuid, (f64, f64)> = drawn.iter().map(|n| (n.id, (n.x, n.y))).collect();
    let marked = |id: &Uuid| origin == Some(*id) || reached.contains_key(id);
    let edges = links
        .iter()
        .filter_map(|(from, to)| {
            let (&(x1, y1), &(x2, y2)) = (at.get(from)?, at.get(to)?);
            let (dx, dy) = (x2 - x1, y2 - y1);
            let length = (dx * dx + dy * dy).sqrt();
            if length <= 2.0 * RADIUS {
                return None;
            }
            let (ux, uy) = (dx / length, dy / length);
            Some(Edge {
                x1: round(x1 + ux * RADIUS),
                y1: round(y1 + uy * RADIUS),
                x2: round(x2 - ux * (RADIUS + 4.0)),
                y2: round(y2 - uy * (RADIUS + 4.0)),
                hit: marked(from) && marked(to),
            })
        })
        .collect();
    (drawn, edges)
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_platform_sits_in_the_middle_and_linked_systems_on_a_ring() {
        let nodes = [
            NodeIn {
                id: id(1),
                label: "platform",
                platform: true,
            },
            NodeIn {
                id: id(2),
                label: "a",
                platform: false,
            },
            NodeIn {
                id: id(3),
                label: "b",
                platform: false,
            },
        ];
        let (drawn, edges) = layout(
            &nodes,
            &[(id(2), id(1)), (id(1), id(3))],
            None,
            &HashMap::new(),
        );
        assert_eq!((drawn[0].x, drawn[0].y), (WIDTH / 2.0, HEIGHT / 2.0));
        for n in &drawn[1..] {
            let d = ((n.x - WIDTH / 2.0).powi(2) + (n.y - HEIGHT / 2.0).powi(2)).sqrt();
            assert!(d > 4.0 * RADIUS, "{} is {d} from the middle", n.label);
            assert!(n.x > 0.0 && n.x < WIDTH && n.y > 0.0 && n.y < HEIGHT);
        }
        assert_eq!(edges.len(), 2);
        // Arrows stop at the circles, not at their centres.
        let e = &edges[0];
        let gap = ((e.x1 - drawn[1].x).powi(2) + (e.y1 - drawn[1].y).powi(2)).sqrt();
        assert!((gap - RADIUS).abs() < 0.2, "starts {gap} from the centre");
    }

    #[test]
    fn a_blast_radius_marks_its_origin_reached_systems_and_the_links_between() {
        let nodes = [
            NodeIn {
                id: id(1),
                label: "p",
                platform: true,
            },
            NodeIn {
                id: id(2),
                label: "a",
                platform: false,
            },
            NodeIn {
                id: id(3),
                label: "b",
                platform: false,
            },
            NodeIn {
                id: id(4),
                label: "c",
                platform: false,
            },
        ];
        let reached = HashMap::from([(id(1), 1), (id(3), 2)]);
        let links = [
            (id(2), id(1)),
            (id(1), id(3)),
            (id(1), id(4)),
            (id(9), id(1)),
        ];
        let (drawn, edges) = layout(&nodes, &links, Some(id(2)), &reached);
        let class = |n: u128| drawn.iter().find(|d| d.id == id(n)).map(Node::class);
        assert_eq!(class(2), Some("node origin"));
        assert_eq!(class(1), Some("node reached"));
        assert_eq!(class(3), Some("node reached"));
        assert_eq!(class(4), Some("node"));
        assert_eq!(edges.len(), 3, "the link to a system not drawn is left out");
        assert_eq!(edges.iter().filter(|e| e.hit).count(), 2);
    }
}
