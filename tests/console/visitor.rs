//! A browser without a browser, for what a page test cannot see: statuses,
//! cookie attributes, forms posted by hand. Keeps the console's session
//! cookie, follows no redirect.

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Vec<String>,
    pub body: String,
}

pub struct Visitor {
    http: reqwest::Client,
    base: String,
    pub cookie: Option<String>,
    pub accept_language: Option<String>,
    pub referer: Option<String>,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookie: None,
            accept_language: None,
            referer: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let mut request = request;
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        if let Some(lang) = &self.accept_language {
            request = request.header("Accept-Language", lang);
        }
        if let Some(referer) = &self.referer {
            request = request.header("Referer", referer);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookie: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookie {
            if let Some(pair) = c.split(';').next()
                && pair.starts_with("renkei_console=")
            {
                self.cookie = Some(pair.to_owned());
            }
        }
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            location,
            set_cookie,
            body,
        }
    }

    /// `GET` a console path, or any absolute URL.
    pub async fn get(&mut self, path: &str) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let request = self.http.get(url);
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }
}

/// The form token on a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form token on the page") + marker.len();
    html[start..].split('"').next().expect("token").to_owned()
}
