-- The reference's conversion factors (CNY is 1 on every day with rates), every pair.
WITH rates AS (
    SELECT day, currency, rate_to_cny FROM fx_rates WHERE currency <> 'CNY'
    UNION ALL
    SELECT DISTINCT day, 'CNY', 1::numeric FROM fx_rates
)
SELECT rs.day, rs.currency AS from_currency, rr.currency AS to_currency,
       (rs.rate_to_cny / rr.rate_to_cny)::text AS factor
  FROM rates rs
  JOIN rates rr ON rr.day = rs.day AND rr.currency <> rs.currency
