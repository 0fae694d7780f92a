//! What a service's bus plumbing shows on `/metrics`: its outbox backlog and
//! the age of its oldest unpublished event, and how far behind each of its
//! durable consumers is. Read when `/metrics` is scraped, so a stuck relay or
//! a consumer that stopped receiving shows at once (a value set only when
//! something happens would freeze at its last good reading).

use std::sync::{Arc, Mutex};

use chrono::Utc;
use renkei_store::Db;
use renkei_telemetry::metrics;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::consumer::ConsumerSpec;
use crate::outbox::{self, entity};

/// The gauges of one service's outbox and consumers. Cheap to clone.
#[derive(Clone)]
pub struct BusGauges {
    service: &'static str,
    db: Db,
    js: async_nats::jetstream::Context,
    consumers: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl BusGauges {
    pub fn new(service: &'static str, db: Db, nats: async_nats::Client) -> BusGauges {
        BusGauges {
            service,
            db,
            js: async_nats::jetstream::new(nats),
            consumers: Arc::default(),
        }
    }

    /// Also reports how many messages `spec`'s consumer has yet to receive.
    pub fn watch(&self, spec: &ConsumerSpec) {
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((spec.stream.name, spec.durable.clone()));
    }

    /// Sets the gauges. What cannot be read now (the database or NATS
    /// down) keeps its last value; `/readyz` and the logs say why.
    pub async fn observe(&self) {
        let service = self.service;
        if let Ok(backlog) = outbox::backlog(&self.db.read).await {
            metrics::gauge!(metrics::OUTBOX_BACKLOG, "service" => service).set(backlog as f64);
        }
        let oldest = entity::Entity::find()
            .select_only()
            .column(entity::Column::CreatedAt)
            .filter(entity::Column::PublishedAt.is_null())
            .order_by_asc(entity::Column::CreatedAt)
            .into_tuple::<chrono::DateTime<Utc>>()
            .one(&self.db.read)
            .await;
        if let Ok(oldest) = oldest {
            let age = oldest.map_or(0.0, |at| metrics::seconds(Utc::now() - at));
            metrics::gauge!(metrics::OUTBOX_OLDEST_AGE, "service" => service).set(age);
        }
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (stream, durable) in consumers {
            // One request: the consumer's info comes with it.
            let consumer = self
                .js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    &durable, stream,
                )
                .await;
            if let Ok(consumer) = consumer {
                let pending = consumer.cached_info().num_pending;
                metrics::gauge!(metrics::CONSUMER_PENDING, "service" => service, "consumer" => durable)
                    .set(pending as f64);
            }
        }
    }
}
