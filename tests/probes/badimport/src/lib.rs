//! A probe that also imports `acme:evil/net`, which no agent provides: it
//! must be refused at load, with the import named.
use watchpost_probe::{Info, Kind, Probe, Report, Result, config};

mod evil {
    wit_bindgen::generate!({
        inline: "
            package acme:evil@1.0.0;
            interface net {
                connect: func(host: string) -> u32;
            }
            world evil {
                import net;
            }
        ",
        world: "evil",
        type_section_suffix: "evil",
    });
}

struct BadImport;

impl Probe for BadImport {
    fn describe() -> Info {
        Info::new(
            "badimport",
            Kind::Host,
            "imports an interface that does not exist",
        )
    }

    fn check() -> Result<Report> {
        let host = config::raw("host").unwrap_or_default();
        let handle = evil::acme::evil::net::connect(&host);
        Ok(Report::ok(format!("connected: {handle}")))
    }
}

watchpost_probe::export_probe!(BadImport);
