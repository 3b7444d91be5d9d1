//! The status page's only style sheet and script, inline in every page
//! (no file is fetched from anywhere), and the Content-Security-Policy
//! that admits exactly these two by their hashes.
//!
//! The script (progressive enhancement; the page is complete without it):
//! every `data-refresh` milliseconds it fetches the page again and swaps
//! in the new `<main>`, keeping open the record details that were open
//! (nothing in `<main>` is a script, and parsed HTML
//! runs none); it keeps the operator token in `sessionStorage` and sends
//! it as `Authorization: Bearer` with the buttons' POSTs.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

pub const CSS: &str = r#"
:root{--ok:#1a7f37;--warning:#b7791f;--critical:#c53030;--unknown:#6b46c1;--dim:#667;--line:#dde;font:14px/1.4 system-ui,sans-serif;color:#1c1c28;background:#f6f7f9}
body{margin:0}header{display:flex;flex-wrap:wrap;gap:1em;align-items:center;padding:.6em 1em;background:#1c1c28;color:#fff}
header a{color:#cfd3ff;margin-right:.8em;text-decoration:none}header a.here{color:#fff;font-weight:600;text-decoration:underline}
.node b{font-weight:600}.token input{width:12em}.live{margin-left:auto;font-size:.85em;color:#9fa}
main{padding:1em;max-width:1200px}h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid var(--line);vertical-align:top}th{background:#eef0f4;font-weight:600}
td.msg{max-width:32em;overflow-wrap:anywhere}.dim{color:var(--dim)}.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;min-width:5.5em;text-align:center;border-radius:3px;padding:0 .4em;color:#fff;font-weight:600}
.s-ok{background:var(--ok)}.s-warning{background:var(--warning)}.s-critical{background:var(--critical)}.s-unknown{background:var(--unknown)}
svg .s-ok{fill:var(--ok)}svg .s-warning{fill:var(--warning)}svg .s-critical{fill:var(--critical)}svg .s-unknown{fill:var(--unknown)}
svg.history{background:#e6e8ee}svg .soft{opacity:.45}svg polyline{fill:none;stroke:#3355cc;stroke-width:1.5}
.flag{color:#fff;background:#c05621;border-radius:3px;padding:0 .3em;font-size:.85em}
.counts span{margin-right:1.2em}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{color:var(--dim)}dd{margin:0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f0f1f5;padding:.5em;margin:.3em 0}
.d-fired,.d-failed,.d-breaker-open,.d-not-verified,.d-interrupted{color:var(--critical);font-weight:600}.d-succeeded{color:var(--ok);font-weight:600}
button{font:inherit;margin-right:.3em}.said{padding:0 1em;color:var(--dim)}footer{padding:1em;color:var(--dim);font-size:.85em}
"#;

pub const JS: &str = r#"
(function(){
var main=document.getElementById("main"),live=document.getElementById("live"),said=document.getElementById("said"),tok=document.getElementById("token");
var every=+main.dataset.refresh||5000;
function tick(){
 fetch(location.pathname+location.search,{cache:"no-store",headers:{Accept:"text/html"}}).then(function(r){if(!r.ok)throw r.status;return r.text()}).then(function(t){
  var m=new DOMParser().parseFromString(t,"text/html").getElementById("main");
  if(m){
   var open=[].map.call(main.querySelectorAll("details[open][data-id]"),function(d){return d.dataset.id+d.dataset.decision});
   [].forEach.call(m.querySelectorAll("details[data-id]"),function(d){if(open.indexOf(d.dataset.id+d.dataset.decision)>=0)d.open=true});
   main.replaceWith(m);main=m}
  live.textContent="live";
 }).catch(function(){live.textContent="agent unreachable"}).then(function(){setTimeout(tick,every)});
}
setTimeout(tick,every);
if(tok){tok.value=sessionStorage.getItem("watchpost-token")||"";tok.addEventListener("input",function(){sessionStorage.setItem("watchpost-token",tok.value)})}
document.addEventListener("click",function(e){
 var b=e.target.closest("button[data-post]");if(!b)return;
 e.preventDefault();
 if(!tok||!tok.value){said.textContent="Type the operator token first.";return}
 fetch(b.dataset.post,{method:"POST",credentials:"omit",headers:{Authorization:"Bearer "+tok.value}}).then(function(r){return r.text().then(function(t){
  var j={};try{j=JSON.parse(t)}catch(x){}
  said.textContent=(r.ok?"":"Refused ("+r.status+"): ")+(j.message||j.error||t);
 })}).catch(function(){said.textContent="The agent did not answer."});
});
})();
"#;

fn hash(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        hash(JS),
        hash(CSS)
    )
});

/// The Content-Security-Policy of every page.
pub fn csp() -> String {
    CSP.clone()
}
