//! Logs and traces for every Renkei process.
//!
//! One `init` sets the global `tracing` subscriber (human or JSON lines), an
//! OpenTelemetry layer so every span has a W3C trace id, OTLP/HTTP export when
//! an endpoint is configured, and the W3C trace-context propagator. The
//! `inject`/`extract` helpers carry that context across process boundaries
//! (NATS headers, HTTP headers, outbox rows) as plain string pairs.

pub mod metrics;

use std::collections::HashMap;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use renkei_settings::{LogFormat, TelemetrySettings};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes pending spans when dropped; keep it alive for the life of `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Export failures at exit are not worth a panic; the collector may be gone.
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. `service` names the process in traces.
pub fn init(settings: &TelemetrySettings, service: &'static str) -> anyhow::Result<TelemetryGuard> {
    let provider = tracer_provider(settings, service)?;
    let filter = EnvFilter::try_new(&settings.filter).with_context(|| {
        format!(
            "telemetry.filter `{}` is not a valid filter",
            settings.filter
        )
    })?;
    let fmt = match settings.format {
        LogFormat::Human => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .boxed(),
    };
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .context("a global tracing subscriber was already installed")?;
    install_propagation(&provider);
    Ok(TelemetryGuard { provider })
}

/// For tests: silent unless `RENKEI_TEST_LOG` names a filter, never fails when
/// called twice, and still gives spans trace ids so propagation is exercised.
pub fn init_for_tests(filter: Option<&str>) {
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let fmt = filter.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new("info")))
    });
    if tracing_subscriber::registry()
        .with(otel)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        install_propagation(&provider);
    }
}

fn tracer_provider(
    settings: &TelemetrySettings,
    service: &'static str,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !settings.otlp_endpoint.is_empty() {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
        let endpoint = format!("{}/v1/traces", settings.otlp_endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_headers(HashMap::new())
            .build()
            .context("telemetry.otlp_endpoint: the OTLP exporter could not be built")?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

fn install_propagation(provider: &SdkTracerProvider) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
}

/// Trace context as string pairs (`traceparent`, `tracestate`).
pub type Carrier = HashMap<String, String>;

struct CarrierInjector<'a>(&'a mut Carrier);
impl Injector for CarrierInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct CarrierExtractor<'a>(&'a Carrier);
impl Extractor for CarrierExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The context of `span`, ready to travel.
pub fn inject(span: &tracing::Span) -> Carrier {
    let mut carrier = Carrier::new();
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut CarrierInjector(&mut carrier));
    carrier
}

/// Makes `span` a child of the context that travelled in `carrier` (no-op
/// when the carrier holds none).
pub fn adopt(span: &tracing::Span, carrier: &Carrier) {
    if carrier.contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&CarrierExtractor(carrier));
        let _ = span.set_parent(cx);
    }
}

/// The W3C trace id of `span`, for logs and problem bodies.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
