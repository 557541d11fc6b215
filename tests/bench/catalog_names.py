"""42 registry names, as a sweep of the whole catalog lists them, in a fixed order: for the
tests of tables and legends that must stay readable with many optimizers (the tests read
their order: a cut cell starts ``sgd,adam,adamw,``)."""

CATALOG_NAMES = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "nadam", "radam", "adamax",
                 "adabelief", "lamb", "yogi", "adopt", "lars", "prodigy", "mars", "laprop",
                 "novograd", "signum", "asgd", "rprop", "adadelta", "momentum", "nag", "amsgrad",
                 "ademamix", "soap", "shampoo", "adafactor", "muon", "sophia", "psgdkron",
                 "dadaptadam", "dadaptsgd", "adammini", "sam", "lookahead", "schedulefreeadamw",
                 "schedulefreesgd", "gd", "sparseadam", "lbfgs"]
