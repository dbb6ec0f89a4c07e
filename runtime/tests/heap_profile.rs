//! The heap profile from goroutines: sampling accuracy at Go's default rate, exact counts
//! at rate 1, frees seen after a collection, and the written file decoded with the
//! writer's own protobuf definitions.

use std::io::Read;

use minigo_runtime::gc_crate::pprof::{build_heap_profile, proto};
use minigo_runtime::gc_crate::{MemProfileRecord, DEFAULT_MEM_PROFILE_RATE};
use minigo_runtime::{
    gc, mem_profile, write_heap_profile, Gc, GcSlice, HeapType, Mutation, Runtime,
};
use prost::Message;

/// 768 bytes: a size class of its own.
#[derive(HeapType)]
struct Big {
    words: [u64; 96],
}

/// 256 bytes.
#[derive(HeapType)]
struct Small {
    words: [u64; 32],
}

#[inline(never)]
fn kept_site<'gc>(mu: Mutation<'gc>, keep: &GcSlice<'gc, Option<Gc<'gc, Big>>>, i: usize) {
    let b = Gc::new(
        mu,
        Big {
            words: [i as u64; 96],
        },
    )
    .unwrap();
    keep.set(i % keep.len(), Some(b));
}

#[inline(never)]
fn dying_site(mu: Mutation<'_>, i: usize) -> u64 {
    let s = Gc::new(
        mu,
        Small {
            words: [i as u64; 32],
        },
    )
    .unwrap();
    std::hint::black_box(s).words[3]
}

/// Overwrites the dead stack below the caller's frame with zeros. Goroutine stacks are
/// scanned conservatively: a stale copy of a dying object's address, left there by
/// `dying_site`'s frame, would otherwise keep it alive through `gc()` whenever the frames
/// `gc()` pushes leave that slot unwritten, which depends on how the runtime is compiled.
#[inline(never)]
fn scrub_stack() {
    let zeros = [0u64; 2048];
    std::hint::black_box(&zeros);
}

/// Runs both sites `n` times each on one P (so 3 bytes of `kept_site` for 1 of
/// `dying_site`), keeping the last `keep` objects of `kept_site`, then collects and returns
/// the published records.
fn profile(rate: usize, n: usize, keep: usize) -> (Vec<MemProfileRecord>, Vec<u8>) {
    let rt = Runtime::builder()
        .procs(1)
        .mem_profile_rate(rate)
        .build()
        .unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(None));
    let o = out.clone();
    rt.run(move |mu| {
        let ring = GcSlice::new(mu, keep, None::<Gc<Big>>).unwrap();
        let mut sum = 0;
        for i in 0..n {
            kept_site(mu, &ring, i);
            sum += dying_site(mu, i);
        }
        assert!(sum > 0);
        scrub_stack();
        gc();
        let mut file = Vec::new();
        write_heap_profile(&mut file).unwrap();
        *o.lock().unwrap() = Some((mem_profile(), file));
        std::hint::black_box(ring);
    })
    .unwrap();
    let r = out.lock().unwrap().take().unwrap();
    r
}

/// Per site: (alloc_objects, alloc_space, inuse_objects, inuse_space) summed over the
/// profile's samples whose stack names the site.
fn by_site(p: &proto::Profile, site: &str) -> [i64; 4] {
    let name = |id: u64| {
        let f = p.function.iter().find(|f| f.id == id).unwrap();
        p.string_table[f.name as usize].as_str()
    };
    let mut v = [0; 4];
    for s in &p.sample {
        let names_site = s.location_id.iter().any(|id| {
            let loc = p.location.iter().find(|l| l.id == *id).unwrap();
            loc.line.iter().any(|l| name(l.function_id).ends_with(site))
        });
        if names_site {
            for (a, b) in v.iter_mut().zip(&s.value) {
                *a += b;
            }
        }
    }
    v
}

/// Every sample's stack as function names, innermost first.
fn stacks(p: &proto::Profile) -> Vec<Vec<String>> {
    p.sample
        .iter()
        .map(|s| {
            s.location_id
                .iter()
                .flat_map(|id| &p.location.iter().find(|l| l.id == *id).unwrap().line)
                .map(|l| {
                    let f = p.function.iter().find(|f| f.id == l.function_id).unwrap();
                    p.string_table[f.name as usize].clone()
                })
                .collect()
        })
        .collect()
}

fn decode(file: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut raw)
        .expect("the profile is gzip");
    proto::Profile::decode(&raw[..]).expect("the profile is profile.proto")
}

#[test]
fn at_rate_one_every_allocation_is_counted_and_frees_are_seen() {
    let (records, file) = profile(1, 2000, 500);
    let p = decode(&file);
    let st = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<_> = p
        .sample_type
        .iter()
        .map(|t| format!("{}/{}", st(t.r#type), st(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    assert_eq!(st(p.default_sample_type), "inuse_space");
    let period = p.period_type.as_ref().unwrap();
    assert_eq!((st(period.r#type), st(period.unit)), ("space", "bytes"));
    assert_eq!(p.period, 1);
    assert_eq!(p.string_table[0], "");
    assert!(!p.location.is_empty() && !p.function.is_empty() && !p.mapping.is_empty());
    for s in &p.sample {
        assert_eq!(s.value.len(), 4);
        for id in &s.location_id {
            let loc = p.location.iter().find(|l| l.id == *id);
            let loc = loc.unwrap_or_else(|| panic!("sample names location {id}"));
            assert!(loc.mapping_id == 0 || p.mapping.iter().any(|m| m.id == loc.mapping_id));
            for l in &loc.line {
                assert!(p.function.iter().any(|f| f.id == l.function_id));
            }
        }
    }
    // Exact at rate 1: 2,000 of each; the ring keeps the last 500 of the big ones.
    assert_eq!(by_site(&p, "kept_site"), [2000, 2000 * 768, 500, 500 * 768]);
    assert_eq!(by_site(&p, "dying_site"), [2000, 2000 * 256, 0, 0]);
    // Trimming left the user's frames on top: each site's own frame is the first of its
    // samples' stacks (the runtime's allocation path is gone), its caller next.
    let rebuilt = build_heap_profile(&records, 1);
    for site in ["kept_site", "dying_site"] {
        let stacks = stacks(&rebuilt);
        let s = stacks.iter().find(|s| s.iter().any(|f| f.ends_with(site)));
        let s = s.unwrap_or_else(|| panic!("no stack names {site}: {stacks:?}"));
        assert_eq!(s[0], format!("heap_profile::{site}"), "{s:?}");
        assert!(
            s.len() >= 2 && s[1].starts_with("heap_profile::profile::"),
            "{s:?}"
        );
    }
    let total: u64 = records.iter().map(|r| r.alloc_objects).sum();
    assert!(total >= 4000, "{total}");
}

#[test]
fn at_the_default_rate_estimates_are_within_ten_percent() {
    // 2.4 GiB from one site and 0.8 GiB from the other: about 4,800 and 1,600 samples,
    // so one standard deviation is 1.4% and 2.5% (sampling is a Poisson process over
    // bytes): 10% is four of them for the smaller site.
    let n = 3_300_000;
    let keep = 200_000;
    let (_, file) = profile(DEFAULT_MEM_PROFILE_RATE, n, keep);
    let p = decode(&file);
    assert_eq!(p.period, DEFAULT_MEM_PROFILE_RATE as i64);
    let kept = by_site(&p, "kept_site");
    let dying = by_site(&p, "dying_site");
    let near = |got: i64, want: usize, tol: f64| {
        let e = (got as f64 - want as f64).abs() / want as f64;
        assert!(
            e <= tol,
            "estimated {got}, truly {want}: {:.1}% off",
            e * 100.0
        );
    };
    near(kept[1], n * 768, 0.10);
    near(dying[1], n * 256, 0.10);
    near(kept[0], n, 0.10);
    near(dying[0], n, 0.10);
    // Every sampled small object died: nothing of that site is in use.
    assert_eq!(dying[2..], [0, 0]);
    // 200,000 big ones (150 MiB) are: about 300 samples, a standard deviation of 6%.
    near(kept[3], keep * 768, 0.25);
}

#[test]
fn profiling_off_records_nothing() {
    let (records, file) = profile(0, 10_000, 10);
    assert!(records.is_empty());
    let p = decode(&file);
    assert!(p.sample.is_empty());
}
