//! The library API: an integrator's closure served with queueing, batching,
//! measurement and tuning; every ticket gets its own answer.

use ecoedge_core::controller::Settings;
use ecoedge_core::time::Duration;
use ecoedge_core::window::WindowSettings;
use ecoedge_runner::board::{BoardAccess, BoardOptions};
use ecoedge_runner::service::api::{Service, ServiceOptions};

fn options(root: &std::path::Path) -> ServiceOptions {
    ServiceOptions {
        board: BoardOptions {
            access: BoardAccess {
                sysfs_root: root.to_path_buf(),
                ..BoardAccess::default()
            },
            ..BoardOptions::default()
        },
        max_batch: 8,
        settings: Settings {
            window: WindowSettings {
                requests: 16,
                warmup: 2,
                ..WindowSettings::default()
            },
            max_wait: Some(Duration::from_millis(5)),
            ..Settings::default()
        },
        ..ServiceOptions::default()
    }
}

#[test]
fn every_submit_gets_its_own_answer_and_windows_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::open(&options(dir.path())).unwrap();
    let mut batches = Vec::new();
    let (answers, outcome) = service
        .serve(
            |batch: Vec<u64>| {
                batches.push(batch.len());
                batch.iter().map(|x| x * 3).collect::<Vec<u64>>()
            },
            |svc| {
                std::thread::scope(|s| {
                    let workers: Vec<_> = (0..4u64)
                        .map(|w| {
                            s.spawn(move || {
                                (0..100u64)
                                    .map(|i| {
                                        let x = w * 1000 + i;
                                        (x, svc.submit(x).unwrap().wait().unwrap())
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .flat_map(|w| w.join().unwrap())
                        .collect::<Vec<_>>()
                })
            },
        )
        .unwrap();
    assert_eq!(answers.len(), 400);
    assert!(answers.iter().all(|&(x, y)| y == 3 * x));
    assert_eq!(outcome.served.len(), 400);
    assert_eq!(outcome.arrived, 400);
    assert!(
        outcome.windows.len() >= 10,
        "{} windows",
        outcome.windows.len()
    );
    assert!(batches.iter().all(|&b| (1..=8).contains(&b)));
}

#[test]
fn a_closure_that_loses_answers_stops_the_service_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::open(&options(dir.path())).unwrap();
    let result = service.serve(
        |batch: Vec<u32>| batch.into_iter().skip(1).collect::<Vec<u32>>(),
        |svc| {
            let tickets: Vec<_> = (0..20).filter_map(|i| svc.submit(i).ok()).collect();
            tickets.into_iter().map(|t| t.wait()).collect::<Vec<_>>()
        },
    );
    let err = result.expect_err("the service reports the bad closure");
    assert!(err.to_string().contains("outputs for"), "{err}");
}
