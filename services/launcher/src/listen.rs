//! `renkei listen`: a webhook receiver for trying Renkei out — a demo, or
//! checking that a contact's channel works before an incident needs it. It
//! prints every notification it receives (title, text, acknowledgement
//! link), says whether its signature verifies with `--secret`, and answers
//! 200 so the delivery counts as delivered.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use renkei_contacts::channels::webhook;

/// The secret signatures are checked with (none: not checked).
struct Secret(Option<String>);

pub async fn run(listen: &str, secret: Option<String>) -> anyhow::Result<()> {
    let secret = web::Data::new(Secret(secret));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(secret.clone())
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .bind(listen)
    .map_err(|e| anyhow::anyhow!("--listen: cannot bind {listen}: {e}"))?;
    for addr in server.addrs() {
        show(&format!(
            "listening for Renkei webhooks on http://{addr}/ (use it as a contact's webhook url)"
        ));
    }
    server.run().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn show(text: &str) {
    println!("{text}");
}

async fn receive(req: HttpRequest, body: web::Bytes, secret: web::Data<Secret>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = match &secret.0 {
        None => "signature not checked (no --secret)",
        Some(secret) => {
            let timestamp = header(webhook::TIMESTAMP).parse().unwrap_or_default();
            if webhook::verify(secret, timestamp, &body, &header(webhook::SIGNATURE)) {
                "signature ok"
            } else {
                "SIGNATURE DOES NOT VERIFY"
            }
        }
    };
    let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |key: &str| message[key].as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "\n── {} {} · delivery {} · {signature}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        req.path(),
        header(webhook::DELIVERY),
    );
    if let Some(tlp) = message["tlp"].as_str() {
        out.push_str(&format!("[{tlp}] "));
    }
    out.push_str(&format!("{}\n{}\n", text("title"), text("text")));
    if message["ack_required"] == serde_json::json!(true) {
        out.push_str(&format!("acknowledge: open {}\n", text("ack_url")));
    }
    show(&out);
    HttpResponse::Ok().finish()
}
