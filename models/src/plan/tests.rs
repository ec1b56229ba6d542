use super::planner::grid_candidates;
use super::*;
use std::sync::Mutex;

use crate::estimator::{Estimator, FittedModel};
use crate::io::iris;
use crate::traits::Classifier;

fn lr() -> Estimator {
    Estimator::from_name("logistic_regression").unwrap()
}

#[test]
fn grid_candidates_follow_parameter_grid_order() {
    let c = grid_candidates(&[
        ("max_iter".into(), vec!["100".into(), "200".into()]),
        ("C".into(), vec!["1".into(), "10".into()]),
    ])
    .unwrap();
    let flat: Vec<String> = c
        .iter()
        .map(|p| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(
        flat,
        [
            "C=1,max_iter=100",
            "C=1,max_iter=200",
            "C=10,max_iter=100",
            "C=10,max_iter=200"
        ]
    );
    assert!(grid_candidates(&[("C".into(), vec![])]).is_err());
}

#[test]
fn bad_jobs_are_refused_before_any_task_runs() {
    let s = DataSummary::of(&iris()).unwrap();
    let grid = |name: &str, v: &str, cv: u32| JobSpec {
        kind: JobKind::GridSearch {
            estimator: lr(),
            grid: vec![(name.into(), vec![v.into()])],
            cv,
            refit: true,
        },
        seed: 0,
    };
    assert!(Planner::new(grid("C", "1", 5), s.clone()).is_ok());
    assert!(Planner::new(grid("C", "-1", 5), s.clone())
        .unwrap_err()
        .to_string()
        .contains('C'));
    assert!(Planner::new(grid("gamma", "1", 5), s.clone()).is_err());
    assert!(Planner::new(grid("C", "1", 1), s.clone()).is_err());
    assert!(Planner::new(grid("C", "1", 151), s.clone()).is_err());
    let voting = JobSpec {
        kind: JobKind::Voting {
            estimators: vec![],
            soft: true,
        },
        seed: 0,
    };
    assert!(Planner::new(voting, s).is_err());
}

#[test]
fn a_search_is_one_task_per_candidate_and_fold_then_a_refit() {
    let data = iris();
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: lr(),
            grid: vec![("C".into(), vec!["0.01".into(), "1".into(), "100".into()])],
            cv: 5,
            refit: true,
        },
        seed: 3,
    };
    let mut p = Planner::new(spec.clone(), DataSummary::of(&data).unwrap()).unwrap();
    let Step::Run(tasks) = p.step().unwrap() else {
        panic!()
    };
    assert_eq!(tasks.len(), 15);
    // Tasks carry row selections, not data.
    let bytes = rmp_serde::to_vec_named(&tasks[0]).unwrap();
    assert!(bytes.len() < 1024, "{} bytes", bytes.len());
    let outputs: Vec<TaskOutput> = tasks.iter().map(|t| run_task(t, &data).unwrap()).collect();
    let Step::Run(refit) = p.complete(outputs).unwrap() else {
        panic!()
    };
    assert_eq!(refit.len(), 1);
    let outputs: Vec<TaskOutput> = refit.iter().map(|t| run_task(t, &data).unwrap()).collect();
    let Step::Done(result) = p.complete(outputs).unwrap() else {
        panic!()
    };
    let cv = result.cv.unwrap();
    assert_eq!(result.tasks, 16);
    assert_eq!(
        cv.best_params(),
        &[("C".to_string(), "100".to_string())][..]
    );
    assert!(cv.mean_test_score[0] < cv.mean_test_score[2]);
    assert_eq!(cv.rank_test_score[cv.best_index], 1);
    assert!(cv.table().lines().nth(1).unwrap().contains("C=100"));
    // The same result from a thread pool, in one call.
    let again = run_job(&spec, &data, &LocalExecutor::new(3), &|_| {}).unwrap();
    assert_eq!(again.cv.unwrap(), cv);
    assert_eq!(again.model, result.model);
}

#[test]
fn fits_that_stop_at_max_iter_say_so_per_candidate_and_in_the_result() {
    let data = iris();
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: lr(),
            grid: vec![("max_iter".into(), vec!["2".into(), "1000".into()])],
            cv: 5,
            refit: true,
        },
        seed: 0,
    };
    let result = run_job(&spec, &data, &LocalExecutor::new(2), &|_| {}).unwrap();
    let cv = result.cv.unwrap();
    let stopped = crate::warnings::not_converged("LogisticRegression", "lbfgs", 2);
    assert_eq!(cv.warnings.len(), 2);
    assert_eq!(cv.warnings[0], [format!("{stopped} (5 times)")]);
    assert!(cv.warnings[1].is_empty(), "{:?}", cv.warnings[1]);
    // The refit (max_iter=1000) converges: the job's warnings are the folds'.
    assert_eq!(cv.best_params(), &[("max_iter".into(), "1000".into())][..]);
    assert_eq!(result.warnings, [format!("{stopped} (5 times)")]);
    let table = cv.table();
    assert!(table.contains("max_iter=2  [1]"), "{table}");
    assert!(
        table.contains(&format!("warnings:\n[1] max_iter=2: {stopped} (5 times)")),
        "{table}"
    );

    // A plain fit that converges raises nothing.
    let mut lr_long = lr();
    lr_long.set_param("max_iter", "1000").unwrap();
    let long = run_job(
        &JobSpec {
            kind: JobKind::Fit { estimator: lr_long },
            seed: 0,
        },
        &data,
        &LocalExecutor::new(1),
        &|_| {},
    )
    .unwrap();
    assert!(long.warnings.is_empty(), "{:?}", long.warnings);
}

#[test]
fn thread_count_does_not_change_any_result() {
    let data = iris();
    let mut forest = Estimator::from_name("random_forest").unwrap();
    forest.set_param("n_estimators", "25").unwrap();
    let tree = Estimator::from_name("decision_tree").unwrap();
    let jobs = [
        JobKind::Fit { estimator: forest },
        JobKind::OneVsRest { estimator: lr() },
        JobKind::OneVsOne { estimator: lr() },
        JobKind::Bagging {
            estimator: tree.clone(),
            n_estimators: 7,
        },
        JobKind::Voting {
            estimators: vec![lr(), tree, Estimator::from_name("gaussian_nb").unwrap()],
            soft: false,
        },
        JobKind::MultiSearch {
            searches: vec![
                (lr(), vec![("C".into(), vec!["0.1".into(), "1".into()])]),
                (
                    Estimator::from_name("decision_tree").unwrap(),
                    vec![("max_depth".into(), vec!["2".into(), "4".into()])],
                ),
            ],
            cv: 3,
            refit: true,
        },
        JobKind::RandomSearch {
            estimator: lr(),
            space: vec![(
                "C".into(),
                Distribution::LogUniform {
                    low: 0.01,
                    high: 100.0,
                },
            )],
            n_iter: 4,
            cv: 3,
            refit: false,
        },
        JobKind::Stacking {
            estimators: vec![lr(), Estimator::from_name("gaussian_nb").unwrap()],
            final_estimator: lr(),
            cv: 3,
        },
        JobKind::Cascade {
            groups: vec![
                vec!["setosa".into()],
                vec!["versicolor".into(), "virginica".into()],
            ],
            router: lr(),
            estimator: Estimator::from_name("decision_tree").unwrap(),
        },
    ];
    for kind in jobs {
        let spec = JobSpec { kind, seed: 11 };
        let seen = Mutex::new(Vec::new());
        let one = run_job(&spec, &data, &LocalExecutor::new(1), &|p| {
            seen.lock().unwrap().push(p)
        })
        .unwrap();
        let four = run_job(&spec, &data, &LocalExecutor::new(4), &|_| {}).unwrap();
        assert_eq!(one, four, "{}", spec.describe());
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), one.tasks, "one progress report per task");
        assert_eq!(seen.last().unwrap().done, one.tasks);
        if let Some(m) = &one.model {
            let (y, _) = data.class_target().unwrap();
            assert!(m.score(data.x(), y).unwrap() > 0.9, "{}", spec.describe());
        }
    }
}

#[test]
fn a_cascade_multiplies_group_and_within_group_probabilities() {
    let data = iris();
    let spec = JobSpec {
        kind: JobKind::Cascade {
            groups: vec![
                vec!["virginica".into()],
                vec!["setosa".into(), "versicolor".into()],
            ],
            router: lr(),
            estimator: lr(),
        },
        seed: 0,
    };
    let result = run_job(&spec, &data, &LocalExecutor::new(2), &|_| {}).unwrap();
    // The router and one classifier for the group of two; none for the singleton.
    assert_eq!(result.tasks, 2);
    let FittedModel::Cascade(c) = result.model.as_ref().unwrap() else {
        panic!("a cascade")
    };
    assert_eq!(c.groups, vec![vec![2], vec![0, 1]]);
    assert!(c.members[0].is_none());
    let p = c.predict_proba(data.x()).unwrap();
    let g = c.router.predict_proba(data.x()).unwrap();
    let w = c.members[1]
        .as_ref()
        .unwrap()
        .predict_proba(data.x())
        .unwrap();
    for i in 0..150 {
        let (p, g, w) = (p.row(i), g.row(i), w.row(i));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(p[2], g[0]);
        assert!((p[0] - g[1] * w[0]).abs() < 1e-7);
    }
    let (y, _) = data.class_target().unwrap();
    assert!(c.score(data.x(), y).unwrap() > 0.95);
}

#[test]
fn bad_meta_estimators_are_refused_with_the_reason() {
    let s = DataSummary::of(&iris()).unwrap();
    let err = |kind: JobKind| {
        Planner::new(JobSpec { kind, seed: 0 }, s.clone())
            .unwrap_err()
            .to_string()
    };
    let cascade = |groups: Vec<Vec<&str>>| JobKind::Cascade {
        groups: groups
            .into_iter()
            .map(|g| g.into_iter().map(String::from).collect())
            .collect(),
        router: lr(),
        estimator: lr(),
    };
    assert!(err(cascade(vec![vec!["setosa"], vec!["versicolor"]]))
        .contains("'virginica' is in no group"));
    assert!(err(cascade(vec![
        vec!["setosa", "virginica"],
        vec!["virginica", "versicolor"]
    ]))
    .contains("in two groups"));
    assert!(err(cascade(vec![vec!["setosa"], vec!["rose"]])).contains("'rose' is not a class"));
    let multi = |targets: &[&str]| JobKind::MultiOutput {
        estimator: Estimator::from_name("ridge").unwrap(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    };
    assert!(err(multi(&["petal_area"])).contains("no column 'petal_area'"));
    assert!(err(multi(&["sepal_length", "sepal_length"])).contains("named twice"));
    assert!(err(multi(&[
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width"
    ]))
    .contains("no features are left"));
    let stacking = JobKind::Stacking {
        estimators: vec![Estimator::from_name("ridge").unwrap()],
        final_estimator: lr(),
        cv: 5,
    };
    assert!(err(stacking).contains("ridge is a regressor"));
    let ridge = Estimator::from_name("ridge").unwrap();
    assert!(err(JobKind::OneVsRest {
        estimator: ridge.clone()
    })
    .contains("needs a classifier"));
    assert!(err(JobKind::MultiSearch {
        searches: vec![(lr(), vec![]), (ridge.clone(), vec![])],
        cv: 3,
        refit: true
    })
    .contains("do not compare"));
    // Parameters are checked as a direct fit checks them.
    let mut forest = Estimator::from_name("random_forest_regressor").unwrap();
    forest.set_param("criterion", "gini").unwrap();
    assert!(err(JobKind::Fit { estimator: forest }).contains("squared_error"));
    // A regressor on a classification target with text labels fails in its task;
    // a classifier on a continuous target is refused up front.
    let mut values = s.clone();
    values.n_classes = 0;
    values.labels.clear();
    let e = Planner::new(
        JobSpec {
            kind: JobKind::Fit { estimator: lr() },
            seed: 0,
        },
        values,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is continuous; use a regressor"), "{e}");
}

#[test]
fn a_clusterer_fits_and_is_searched_by_its_inertia_and_nothing_else() {
    let data = iris();
    let km = Estimator::from_name("kmeans").unwrap();
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: km.clone(),
            grid: vec![(
                "n_clusters".into(),
                vec!["2".into(), "3".into(), "5".into()],
            )],
            cv: 3,
            refit: true,
        },
        seed: 1,
    };
    let result = run_job(&spec, &data, &LocalExecutor::new(2), &|_| {}).unwrap();
    let cv = result.cv.unwrap();
    // Scored as scikit-learn's KMeans.score: minus the held-out fold's inertia, so more
    // clusters score higher.
    assert!(cv.split_scores.iter().flatten().all(|&s| s < 0.0));
    assert!(cv.mean_test_score[0] < cv.mean_test_score[1]);
    assert!(cv.mean_test_score[1] < cv.mean_test_score[2]);
    assert_eq!(cv.best_params(), &[("n_clusters".into(), "5".into())][..]);
    let model = result.model.unwrap();
    assert!(model.is_clusterer());
    assert_eq!(model.n_classes(), 5);
    // Any target will do, a continuous one too; meta-estimators are refused by name.
    let mut values = DataSummary::of(&data).unwrap();
    values.n_classes = 0;
    values.labels.clear();
    let fit = JobSpec {
        kind: JobKind::Fit {
            estimator: km.clone(),
        },
        seed: 0,
    };
    assert!(Planner::new(fit, values.clone()).is_ok());
    let e = Planner::new(
        JobSpec {
            kind: JobKind::OneVsRest { estimator: km },
            seed: 0,
        },
        DataSummary::of(&data).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("kmeans is a clusterer") && e.contains("one_vs_rest(kmeans)"),
        "{e}"
    );
}

#[test]
fn regressors_bagged_on_integer_labels_average_values() {
    // Digits' labels are integers: a regressor reads them as numbers.
    let digits = crate::io::load_csv(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv"),
        &crate::io::CsvOptions::default(),
    )
    .unwrap();
    let mut tree = Estimator::from_name("decision_tree_regressor").unwrap();
    tree.set_param("max_depth", "6").unwrap();
    let spec = JobSpec {
        kind: JobKind::Bagging {
            estimator: tree,
            n_estimators: 4,
        },
        seed: 0,
    };
    let m = run_job(&spec, &digits, &LocalExecutor::new(2), &|_| {})
        .unwrap()
        .model
        .unwrap();
    assert!(m.is_regressor());
    assert!(m.evaluate(&digits).unwrap() > 0.5);
    // A multi-output classifier refuses a continuous column.
    let spec = JobSpec {
        kind: JobKind::MultiOutput {
            estimator: lr(),
            targets: vec!["petal_width".into()],
        },
        seed: 0,
    };
    let e = run_job(&spec, &iris(), &LocalExecutor::new(1), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("non-integer values"), "{e}");
}

#[test]
fn a_failing_task_fails_the_job_with_its_error() {
    // Bootstrap samples of 50 setosa rows have a single class: logistic regression
    // refuses them.
    let setosa = iris().select(&(0..50).collect::<Vec<_>>()).unwrap();
    let spec = JobSpec {
        kind: JobKind::Bagging {
            estimator: lr(),
            n_estimators: 4,
        },
        seed: 0,
    };
    let e = run_job(&spec, &setosa, &LocalExecutor::new(2), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("two classes"), "{e}");
}

#[test]
fn relabelled_datasets_keep_their_column_kinds() {
    use crate::schema::ColumnKind;
    let text = "c,n,y\np,1,a\nq,2,b\np,3,c\nq,4,a\n";
    let d = crate::io::read_csv(text.as_bytes(), "t.csv", &Default::default()).unwrap();
    let kinds = d.kinds();
    assert!(matches!(kinds[0], ColumnKind::Categorical { .. }));
    for how in [
        data::Relabel::OneVsRest { class: 0 },
        data::Relabel::Pair { a: 0, b: 1 },
        data::Relabel::Within {
            classes: vec![0, 2],
        },
    ] {
        let r = data::relabel(d.clone(), &how).unwrap();
        assert_eq!(r.kinds(), kinds, "{how:?}");
    }
    // A categorical column as a multi-output target: its categories are the labels.
    let r = data::column_target(&d, "c", &["c".to_string()], true).unwrap();
    assert_eq!(r.classes().unwrap().labels(), ["p", "q"]);
    assert_eq!(r.kinds(), vec![ColumnKind::Numeric]);
}
