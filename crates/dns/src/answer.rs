//! Answers from the zone: what to do with one query message.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::records::{Data, TTL, Zone, key_of};

/// The UDP payload size this server advertises in its EDNS answers (the DNS flag day 2020 size).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a query.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send this response.
    Reply(Message),
    /// The name is not the cluster's: relay the query upstream.
    Forward,
    /// `response` holds a CNAME to `target`, outside the zone: resolve `target` upstream and
    /// append its answers (as CoreDNS does for ExternalName Services).
    Chase {
        /// The response so far (the CNAME).
        response: Message,
        /// The CNAME target.
        target: Name,
    },
}

/// Decodes a query; `Err(Some(id))` for a malformed one that still has an ID (answer
/// FORMERR), `Err(None)` when nothing should be sent back (garbage, or a response rather than
/// a query).
pub(crate) fn parse(bytes: &[u8]) -> Result<Message, Option<u16>> {
    match Message::from_vec(bytes) {
        Ok(m) if m.message_type() == MessageType::Response => Err(None),
        Ok(m) => Ok(m),
        Err(_) if bytes.len() >= 12 && bytes[2] & 0x80 == 0 => {
            Err(Some(u16::from_be_bytes([bytes[0], bytes[1]])))
        }
        Err(_) => Err(None),
    }
}

/// The FORMERR answer to a malformed query with ID `id`.
pub(crate) fn formerr(id: u16) -> Message {
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
}

/// The largest UDP answer the client of `req` accepts.
pub(crate) fn udp_limit(req: &Message) -> usize {
    usize::from(req.max_payload().max(512))
}

/// An empty response to `req` (same ID, question, RD and CD; RA; EDNS if the query had it).
pub(crate) fn response_to(req: &Message, rcode: ResponseCode) -> Message {
    let mut m = Message::new();
    m.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(req.checking_disabled())
        .set_response_code(rcode);
    m.add_queries(req.queries().iter().cloned());
    if req.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
        m.set_edns(edns);
    }
    m
}

/// Decides the answer to `req` from `zone`.
pub(crate) fn answer(zone: &Zone, req: &Message) -> Outcome {
    if req.op_code() != OpCode::Query {
        return Outcome::Reply(response_to(req, ResponseCode::NotImp));
    }
    let [q] = req.queries() else {
        return Outcome::Reply(response_to(req, ResponseCode::FormErr));
    };
    let Some(key) = key_of(q.name()) else {
        // Not a name the cluster can define (odd bytes): ours only if under the zone.
        return if zone.origin.zone_of(q.name()) {
            nxdomain(zone, req)
        } else {
            Outcome::Forward
        };
    };
    if zone.contains(&key) {
        if q.query_class() != DNSClass::IN && q.query_class() != DNSClass::ANY {
            return Outcome::Reply(response_to(req, ResponseCode::NotImp));
        }
        return in_zone(zone, req, q, &key);
    }
    // Reverse names: answered when the cluster defines them, forwarded otherwise (CoreDNS's
    // `fallthrough in-addr.arpa ip6.arpa`).
    if matches!(q.query_type(), RecordType::PTR | RecordType::ANY)
        && (key.ends_with(".in-addr.arpa") || key.ends_with(".ip6.arpa"))
        && let Some(node) = zone.get(&key)
        && node.records.iter().any(|(_, d)| matches!(d, Data::Ptr(_)))
    {
        let mut m = authoritative(req, ResponseCode::NoError);
        for (_, d) in &node.records {
            if matches!(d, Data::Ptr(_)) {
                m.add_answer(record(q.name(), d));
            }
        }
        return Outcome::Reply(m);
    }
    Outcome::Forward
}

fn authoritative(req: &Message, rcode: ResponseCode) -> Message {
    let mut m = response_to(req, rcode);
    m.set_authoritative(true);
    m
}

fn soa(zone: &Zone) -> Record {
    Record::from_rdata(
        zone.origin.clone(),
        TTL,
        RData::SOA(SOA::new(
            zone.mname.clone(),
            zone.rname.clone(),
            zone.serial,
            7200,
            1800,
            86400,
            TTL,
        )),
    )
}

fn nxdomain(zone: &Zone, req: &Message) -> Outcome {
    let mut m = authoritative(req, ResponseCode::NXDomain);
    m.add_name_server(soa(zone));
    Outcome::Reply(m)
}

fn nodata(zone: &Zone, req: &Message) -> Outcome {
    let mut m = authoritative(req, ResponseCode::NoError);
    m.add_name_server(soa(zone));
    Outcome::Reply(m)
}

/// Whether a record of `data` answers a question of type `t`.
fn answers(data: &Data, t: RecordType) -> bool {
    matches!(
        (data, t),
        (_, RecordType::ANY)
            | (Data::A(_), RecordType::A)
            | (Data::Aaaa(_), RecordType::AAAA)
            | (Data::Srv { .. }, RecordType::SRV)
            | (Data::Ptr(_), RecordType::PTR)
            | (Data::Cname(_), RecordType::CNAME)
            | (Data::Txt(_), RecordType::TXT)
    )
}

/// The record `data` named `name`.
pub(crate) fn record(name: &Name, data: &Data) -> Record {
    let rdata = match data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Data::Srv {
            priority,
            weight,
            port,
            target,
            ..
        } => RData::SRV(SRV::new(*priority, *weight, *port, target.clone())),
        Data::Ptr(n) => RData::PTR(PTR(n.clone())),
        Data::Cname(n) => RData::CNAME(CNAME(n.clone())),
        Data::Txt(t) => RData::TXT(TXT::new(vec![(*t).to_string()])),
    };
    Record::from_rdata(name.clone(), TTL, rdata)
}

fn in_zone(zone: &Zone, req: &Message, q: &Query, key: &str) -> Outcome {
    let qtype = q.query_type();
    if key == zone.zone {
        let mut m = authoritative(req, ResponseCode::NoError);
        match qtype {
            RecordType::SOA => {
                let mut s = soa(zone);
                s.set_name(q.name().clone());
                m.add_answer(s);
            }
            RecordType::NS => {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::NS(NS(zone.mname.clone())),
                ));
            }
            _ => {
                m.add_name_server(soa(zone));
            }
        }
        return Outcome::Reply(m);
    }
    let Some(node) = zone.get(key) else {
        return synthesized(zone, req, q, key);
    };
    let mut m = authoritative(req, ResponseCode::NoError);
    // An alias (ExternalName): the CNAME answers every type.
    if qtype != RecordType::CNAME
        && let Some(Data::Cname(target)) = node
            .records
            .iter()
            .map(|(_, d)| d)
            .find(|d| matches!(d, Data::Cname(_)))
    {
        m.add_answer(record(q.name(), &Data::Cname(target.clone())));
        return match key_of(target) {
            Some(tkey) if zone.contains(&tkey) => {
                if let Some(tnode) = zone.get(&tkey) {
                    for (_, d) in &tnode.records {
                        if answers(d, qtype) {
                            m.add_answer(record(target, d));
                        }
                    }
                }
                Outcome::Reply(m)
            }
            _ => Outcome::Chase {
                response: m,
                target: target.clone(),
            },
        };
    }
    let mut targets: Vec<(&Name, &str)> = Vec::new();
    for (_, d) in &node.records {
        if answers(d, qtype) {
            m.add_answer(record(q.name(), d));
            if let Data::Srv {
                target, target_key, ..
            } = d
                && !targets.iter().any(|(_, k)| *k == &**target_key)
            {
                targets.push((target, target_key));
            }
        }
    }
    if m.answers().is_empty() {
        m.add_name_server(soa(zone));
    }
    for (target, tkey) in targets {
        if let Some(tnode) = zone.get(tkey) {
            for (_, d) in &tnode.records {
                if matches!(d, Data::A(_) | Data::Aaaa(_)) {
                    m.add_additional(record(target, d));
                }
            }
        }
    }
    Outcome::Reply(m)
}

/// Names the zone answers without storing them: `svc.<zone>`, `pod.<zone>`, and pods
/// (`<a-b-c-d>.<ns>.pod.<zone>`, CoreDNS's `pods insecure`: any namespace, no check that
/// the pod exists).
fn synthesized(zone: &Zone, req: &Message, q: &Query, key: &str) -> Outcome {
    let Some(rel) = zone.relative(key) else {
        return nxdomain(zone, req);
    };
    if rel == "svc" || rel == "pod" {
        return nodata(zone, req);
    }
    let Some(under_pod) = rel.strip_suffix(".pod") else {
        return nxdomain(zone, req);
    };
    let Some((label, ns)) = under_pod.split_once('.') else {
        // `<ns>.pod.<zone>`.
        return nodata(zone, req);
    };
    if ns.contains('.') {
        return nxdomain(zone, req);
    }
    let ip = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".").parse::<IpAddr>()
    } else {
        label.replace('-', ":").parse::<IpAddr>()
    };
    let Ok(ip) = ip else {
        return nxdomain(zone, req);
    };
    let data = match ip {
        IpAddr::V4(v4) => Data::A(v4),
        IpAddr::V6(v6) => Data::Aaaa(v6),
    };
    if !answers(&data, q.query_type()) {
        return nodata(zone, req);
    }
    let mut m = authoritative(req, ResponseCode::NoError);
    m.add_answer(record(q.name(), &data));
    Outcome::Reply(m)
}

/// Encodes `m` to fit `limit` bytes: drops the additional section first, then every record
/// with the TC bit set (the client retries over TCP).
pub(crate) fn encode(mut m: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    if !m.additionals().is_empty() {
        m.take_additionals();
        if let Ok(b) = m.to_vec()
            && b.len() <= limit
        {
            return Some(b);
        }
    }
    m.truncate().to_vec().ok()
}
