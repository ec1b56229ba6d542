//! The planner's stages for stacking, cascades and multi-output jobs, whose fitted models
//! are assembled in [`crate::meta`].

use super::{JobResult, Planner, Step};
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::plan::data::{DataSummary, Relabel, Rows};
use crate::plan::job::JobKind;
use crate::plan::task::Work;
use crate::traits::Classifier;

/// The class ids of each cascade group; every class in exactly one group, at least two
/// groups.
pub(super) fn cascade_groups(
    groups: &[Vec<String>],
    summary: &DataSummary,
) -> Result<Vec<Vec<u32>>> {
    if summary.n_classes < 2 {
        return Err(ModelError::data("cascade", "needs at least two classes"));
    }
    if groups.len() < 2 {
        return Err(ModelError::data("cascade", "needs at least two groups"));
    }
    let mut seen = vec![false; summary.n_classes];
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        if g.is_empty() {
            return Err(ModelError::data("cascade", "a group has no classes"));
        }
        let mut ids = Vec::with_capacity(g.len());
        for label in g {
            let c = summary.class_id(label)?;
            if std::mem::replace(&mut seen[c as usize], true) {
                return Err(ModelError::data(
                    "cascade",
                    format!("class '{label}' is in two groups"),
                ));
            }
            ids.push(c);
        }
        out.push(ids);
    }
    if let Some(c) = seen.iter().position(|s| !s) {
        return Err(ModelError::data(
            "cascade",
            format!("class '{}' is in no group", summary.labels[c]),
        ));
    }
    Ok(out)
}

impl Planner {
    /// Stacking: every member's out-of-fold fits and full fit (stage 0), the final
    /// estimator on the out-of-fold probabilities (stage 1).
    pub(super) fn stacking_step(&self, stage: u32) -> Result<Step> {
        let JobKind::Stacking {
            estimators,
            final_estimator,
            cv,
        } = &self.spec.kind
        else {
            unreachable!("a stacking job")
        };
        let (m, cv) = (estimators.len(), *cv);
        match stage {
            0 => {
                let mut works = Vec::new();
                for e in estimators {
                    works.extend(self.fold_fits(&self.seeded(e), cv, true));
                }
                works.extend(estimators.iter().map(|e| Self::fit_all(self.seeded(e))));
                Ok(self.keep(0, works))
            }
            1 => {
                let oof = self.done[0][..m * cv as usize]
                    .iter()
                    .map(|o| {
                        o.predictions.clone().ok_or_else(|| {
                            ModelError::data("task output", "out-of-fold probabilities are missing")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.keep(
                    1,
                    vec![Work::Stack {
                        estimator: self.seeded(final_estimator),
                        cv,
                        members: m as u32,
                        oof,
                    }],
                ))
            }
            _ => {
                let members = self.done[0][m * cv as usize..]
                    .iter()
                    .map(|o| {
                        o.model.clone().ok_or_else(|| {
                            ModelError::data("task output", "a member's model is missing")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let n_features = members.first().map_or(0, Classifier::n_features);
                let final_estimator = Box::new(self.models(1)?.remove(0));
                Ok(Step::Done(Box::new(JobResult {
                    model: Some(FittedModel::Stacking(crate::meta::FittedStacking {
                        members,
                        final_estimator,
                        n_classes: self.summary.n_classes,
                        n_features,
                    })),
                    cv: None,
                    tasks: self.tasks_run(),
                    warnings: Vec::new(),
                })))
            }
        }
    }

    /// A cascade: the router and each group's classifier, all in one stage.
    pub(super) fn cascade_step(&self, stage: u32) -> Result<Step> {
        let JobKind::Cascade {
            groups,
            router,
            estimator,
        } = &self.spec.kind
        else {
            unreachable!("a cascade job")
        };
        let ids = cascade_groups(groups, &self.summary)?;
        let mut of = vec![0u32; self.summary.n_classes];
        for (g, classes) in ids.iter().enumerate() {
            for &c in classes {
                of[c as usize] = g as u32;
            }
        }
        let fit = |e: &Estimator, relabel: Relabel| Work::Fit {
            estimator: self.seeded(e),
            train: Rows::All,
            relabel,
            eval: None,
            keep_model: true,
            predict_eval: false,
        };
        if stage == 0 {
            let mut works = vec![fit(router, Relabel::Group { groups: of })];
            works.extend(
                ids.iter()
                    .filter(|c| c.len() > 1)
                    .map(|c| fit(estimator, Relabel::Within { classes: c.clone() })),
            );
            return Ok(self.keep(0, works));
        }
        let mut models = self.models(0)?.into_iter();
        let router = Box::new(models.next().expect("the router's task"));
        let members = ids
            .iter()
            .map(|c| if c.len() > 1 { models.next() } else { None })
            .collect();
        Ok(Step::Done(Box::new(JobResult {
            model: Some(FittedModel::Cascade(crate::meta::FittedCascade {
                n_features: router.n_features(),
                router,
                groups: ids,
                members,
                n_classes: self.summary.n_classes,
            })),
            cv: None,
            tasks: self.tasks_run(),
            warnings: Vec::new(),
        })))
    }

    /// Multi-output: one task per target.
    pub(super) fn multi_output_step(&self, stage: u32) -> Result<Step> {
        let JobKind::MultiOutput { estimator, targets } = &self.spec.kind else {
            unreachable!("a multi-output job")
        };
        if stage == 0 {
            let e = self.seeded(estimator);
            let works = targets
                .iter()
                .map(|t| Work::Fit {
                    estimator: e.clone(),
                    train: Rows::All,
                    relabel: Relabel::Column {
                        target: t.clone(),
                        exclude: targets.clone(),
                        classes: !e.is_regressor(),
                    },
                    eval: None,
                    keep_model: true,
                    predict_eval: false,
                })
                .collect();
            return Ok(self.keep(0, works));
        }
        Ok(Step::Done(Box::new(JobResult {
            model: Some(FittedModel::MultiOutput(crate::meta::FittedMultiOutput {
                targets: targets.clone(),
                features: self
                    .summary
                    .features
                    .iter()
                    .filter(|f| !targets.contains(f))
                    .cloned()
                    .collect(),
                labels: self.done[0].iter().map(|o| o.labels.clone()).collect(),
                members: self.models(0)?,
            })),
            cv: None,
            tasks: self.tasks_run(),
            warnings: Vec::new(),
        })))
    }
}
