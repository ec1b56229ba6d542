//! The macro that turns the one list of estimators in [`super`] into the [`Estimator`],
//! [`TransformerSpec`], [`FittedTransformer`] and [`FittedModel`] enums and all their
//! dispatch.
//!
//! [`Estimator`]: super::Estimator
//! [`TransformerSpec`]: super::TransformerSpec
//! [`FittedTransformer`]: super::FittedTransformer
//! [`FittedModel`]: super::FittedModel
//!
//! Every variant dispatches through traits its module implements: [`Params`] (name,
//! aliases, description, parameters, seeding), [`Fit`] (whose fitted type converts into
//! the fitted enum), [`Transformer`] and [`Model`]. The enums keep serde's adjacently
//! tagged form (`{"kind": "snake_case_name", "params" | "state": ...}`), so the variant
//! name is the wire name: renaming a variant breaks old job files and artifacts (the
//! fixtures in `tests/fixtures/` catch that).
//!
//! [`Params`]: crate::traits::Params
//! [`Fit`]: crate::traits::Fit
//! [`Transformer`]: crate::traits::Transformer
//! [`Model`]: crate::traits::Model

/// Generates the estimator enums and their dispatch from lists of
/// `Variant(ParamsType)` (classifiers, regressors, clusterers), `Variant(ParamsType => FittedType)` (transformers)
/// and `Variant(FittedType)` (fitted models). Doc comments on an entry document the
/// variant.
macro_rules! registry {
    (
        classifiers { $( $(#[$c_doc:meta])* $c:ident($c_params:ty), )* }
        regressors { $( $(#[$r_doc:meta])* $r:ident($r_params:ty), )* }
        clusterers { $( $(#[$k_doc:meta])* $k:ident($k_params:ty), )* }
        transformers { $( $(#[$t_doc:meta])* $t:ident($t_params:ty => $t_fitted:ty), )* }
        fitted { $( $(#[$f_doc:meta])* $f:ident($f_type:ty), )* }
    ) => {
        /// Every classifier name with a one-line description, for help texts.
        pub const CLASSIFIERS: &[(&str, &str)] = &[
            $( (<$c_params as Params>::NAME, <$c_params as Params>::DESCRIPTION), )*
        ];

        /// Every regressor name with a one-line description.
        pub const REGRESSORS: &[(&str, &str)] = &[
            $( (<$r_params as Params>::NAME, <$r_params as Params>::DESCRIPTION), )*
        ];

        /// Every clusterer name with a one-line description.
        pub const CLUSTERERS: &[(&str, &str)] = &[
            $( (<$k_params as Params>::NAME, <$k_params as Params>::DESCRIPTION), )*
        ];

        /// Every transformer name with a one-line description.
        pub const TRANSFORMERS: &[(&str, &str)] = &[
            $( (<$t_params as Params>::NAME, <$t_params as Params>::DESCRIPTION), )*
        ];

        /// An estimator specification: which algorithm, with which parameters.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "kind", content = "params", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Estimator {
            $( $(#[$c_doc])* $c($c_params), )*
            $( $(#[$r_doc])* $r($r_params), )*
            $( $(#[$k_doc])* $k($k_params), )*
            /// Transformers followed by an estimator.
            Pipeline(PipelineParams),
        }

        impl Estimator {
            /// The registered estimator called `name` (or one of its aliases), with
            /// default parameters.
            fn registered(name: &str) -> Option<Self> {
                $( if <$c_params as Params>::is_named(name) {
                    return Some(Self::$c(<$c_params>::default()));
                } )*
                $( if <$r_params as Params>::is_named(name) {
                    return Some(Self::$r(<$r_params>::default()));
                } )*
                $( if <$k_params as Params>::is_named(name) {
                    return Some(Self::$k(<$k_params>::default()));
                } )*
                None
            }

            /// The estimator's name (`standard_scaler+logistic_regression` for a pipeline).
            pub fn name(&self) -> String {
                match self {
                    $( Self::$c(_) => <$c_params as Params>::NAME.to_string(), )*
                    $( Self::$r(_) => <$r_params as Params>::NAME.to_string(), )*
                    $( Self::$k(_) => <$k_params as Params>::NAME.to_string(), )*
                    Self::Pipeline(p) => p.name(),
                }
            }

            /// The parameter names of a single estimator (none for a pipeline).
            pub(crate) fn params_names(&self) -> &'static [&'static str] {
                match self {
                    $( Self::$c(_) => <$c_params as Params>::PARAM_NAMES, )*
                    $( Self::$r(_) => <$r_params as Params>::PARAM_NAMES, )*
                    $( Self::$k(_) => <$k_params as Params>::PARAM_NAMES, )*
                    Self::Pipeline(_) => &[],
                }
            }

            /// Sets a parameter from text. In a pipeline, `step__param` (scikit-learn's
            /// syntax) addresses one step; a bare name goes to the one step that has it.
            pub fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
                match self {
                    $( Self::$c(p) => Params::set_param(p, key, value), )*
                    $( Self::$r(p) => Params::set_param(p, key, value), )*
                    $( Self::$k(p) => Params::set_param(p, key, value), )*
                    Self::Pipeline(p) => p.set_param(key, value),
                }
            }

            /// Gives randomised estimators that have no `random_state` this seed, so a run
            /// is reproducible from the seed it reports.
            pub fn seed_unset(&mut self, seed: u64) {
                match self {
                    $( Self::$c(p) => Params::seed_unset(p, seed), )*
                    $( Self::$r(p) => Params::seed_unset(p, seed), )*
                    $( Self::$k(p) => Params::seed_unset(p, seed), )*
                    Self::Pipeline(p) => {
                        p.steps.iter_mut().for_each(|s| s.seed_unset(seed));
                        p.estimator.seed_unset(seed)
                    }
                }
            }

            /// True for an estimator that predicts values rather than classes.
            pub fn is_regressor(&self) -> bool {
                match self {
                    $( Self::$c(_) => false, )*
                    $( Self::$r(_) => true, )*
                    $( Self::$k(_) => false, )*
                    Self::Pipeline(p) => p.estimator.is_regressor(),
                }
            }

            /// True for an estimator that groups rows (it ignores the target, and predicts
            /// each row's cluster).
            pub fn is_clusterer(&self) -> bool {
                match self {
                    $( Self::$k(_) => true, )*
                    Self::Pipeline(p) => p.estimator.is_clusterer(),
                    _ => false,
                }
            }

            /// Checks every parameter.
            pub fn validate(&self) -> Result<()> {
                match self {
                    $( Self::$c(p) => Params::validate(p), )*
                    $( Self::$r(p) => Params::validate(p), )*
                    $( Self::$k(p) => Params::validate(p), )*
                    Self::Pipeline(p) => p.validate(),
                }
            }
        }

        impl Fit for Estimator {
            type Fitted = FittedModel;

            /// Fits; each kind checks its parameters once (see [`Checked`]).
            ///
            /// [`Checked`]: crate::traits::Checked
            fn fit(&self, data: &Dataset) -> Result<FittedModel> {
                if !matches!(self, Self::Pipeline(_)) {
                    crate::schema::check_model_input_kinds(
                        data,
                        &self.name(),
                        self.takes_missing(),
                        self.takes_categories(),
                    )?;
                }
                Ok(match self {
                    $( Self::$c(p) => Fit::fit(p, data)?.into(), )*
                    $( Self::$r(p) => Fit::fit(p, data)?.into(), )*
                    $( Self::$k(p) => Fit::fit(p, data)?.into(), )*
                    Self::Pipeline(p) => FittedModel::Pipeline(p.fit(data)?),
                })
            }
        }

        /// A transformer specification.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "kind", content = "params", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum TransformerSpec {
            $( $(#[$t_doc])* $t($t_params), )*
        }

        impl TransformerSpec {
            /// A transformer with default parameters by name.
            pub fn from_name(name: &str) -> Result<Self> {
                $( if <$t_params as Params>::is_named(name) {
                    return Ok(Self::$t(<$t_params>::default()));
                } )*
                Err(ModelError::UnknownEstimator(name.to_string(), names(TRANSFORMERS)))
            }

            /// The transformer's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$t(_) => <$t_params as Params>::NAME, )*
                }
            }

            pub(crate) fn params_names(&self) -> &'static [&'static str] {
                match self {
                    $( Self::$t(_) => <$t_params as Params>::PARAM_NAMES, )*
                }
            }

            pub(crate) fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
                match self {
                    $( Self::$t(p) => Params::set_param(p, key, value), )*
                }
            }

            pub(crate) fn validate(&self) -> Result<()> {
                match self {
                    $( Self::$t(p) => Params::validate(p), )*
                }
            }

            /// Gives a randomised step (k-means) that has no `random_state` this seed.
            pub fn seed_unset(&mut self, seed: u64) {
                match self {
                    $( Self::$t(p) => Params::seed_unset(p, seed), )*
                }
            }

            /// Fits the transformer on a dataset (a selector also reads the target).
            pub fn fit(&self, data: &Dataset) -> Result<FittedTransformer> {
                Ok(match self {
                    $( Self::$t(p) => FittedTransformer::$t(Fit::fit(p, data)?), )*
                })
            }
        }

        /// A fitted transformer.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "state", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum FittedTransformer {
            $( $(#[$t_doc])* $t($t_fitted), )*
        }

        impl FittedTransformer {
            fn inner(&self) -> &dyn Transformer {
                match self {
                    $( Self::$t(t) => t, )*
                }
            }
        }

        /// A fitted model of any kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "state", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum FittedModel {
            $( $(#[$f_doc])* $f($f_type), )*
        }

        $( impl From<$f_type> for FittedModel {
            fn from(m: $f_type) -> Self {
                Self::$f(m)
            }
        } )*

        impl FittedModel {
            /// The model inside, for dispatch.
            fn inner(&self) -> &dyn Model {
                match self {
                    $( Self::$f(m) => m, )*
                }
            }
        }
    };
}

pub(crate) use registry;
