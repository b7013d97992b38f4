"""Customer-lifetime-value statistics: the BG/NBD and Gamma-Gamma (BTYD) model fits.

`btyd` holds the numpy/scipy maximum-likelihood fits and predictions. It writes only raw model
scores; the dbt models derive every published CLV column from them.
"""
