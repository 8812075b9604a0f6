WITH _units AS (
  SELECT
    MIN(variant) AS arm_lo,
    MAX(variant) AS arm_hi,
    CASE WHEN user_id IS NULL THEN 1 ELSE 0 END AS nu,
    SUM(CAST(clicks AS DOUBLE)) AS v,
    COUNT(*) - COUNT(clicks) AS nv,
    SUM(CAST(views AS DOUBLE)) AS m,
    COUNT(*) - COUNT(views) AS nm,
    COALESCE(SUM(CAST(pre_clicks AS DOUBLE)), 0.0) AS x0,
    CASE WHEN COUNT(pre_clicks) > 0 THEN 1.0 ELSE 0.0 END AS x1
  FROM analytics.events
  GROUP BY
    user_id
), _shifts AS (
  SELECT
    arm_lo,
    SUM(CASE WHEN arm_lo <> arm_hi THEN 1 ELSE 0 END) AS n_mixed,
    SUM(nu) AS null_unit,
    COUNT(*) AS n_units,
    SUM(CASE WHEN nv > 0 THEN 1 ELSE 0 END) AS null_v,
    SUM(CASE WHEN nm > 0 THEN 1 ELSE 0 END) AS null_m,
    COALESCE(MIN(v), 0.0) AS c_v,
    COALESCE(MIN(m), 0.0) AS c_m,
    COALESCE(MIN(x0), 0.0) AS c_x0,
    COALESCE(MIN(x1), 0.0) AS c_x1
  FROM _units
  GROUP BY
    arm_lo
), _dev AS (
  SELECT
    u.arm_lo AS arm_lo,
    u.v - s.c_v AS v,
    u.m - s.c_m AS m,
    u.x0 - s.c_x0 AS x0,
    u.x1 - s.c_x1 AS x1
  FROM _units AS u
  JOIN _shifts AS s
    ON u.arm_lo = s.arm_lo
  WHERE
    u.nu = 0 AND u.nv = 0 AND u.nm = 0
), _sums AS (
  SELECT
    arm_lo,
    COUNT(*) AS n,
    SUM(v) AS s_v,
    SUM(m) AS s_m,
    SUM(x0) AS s_x0,
    SUM(x1) AS s_x1,
    SUM(v * v) AS s_vv,
    SUM(v * m) AS s_vm,
    SUM(v * x0) AS s_vx0,
    SUM(v * x1) AS s_vx1,
    SUM(m * m) AS s_mm,
    SUM(m * x0) AS s_mx0,
    SUM(m * x1) AS s_mx1,
    SUM(x0 * x0) AS s_x0x0,
    SUM(x0 * x1) AS s_x0x1,
    SUM(x1 * x1) AS s_x1x1,
    SUM(v * v * v) AS s_vvv,
    SUM(v * v * m) AS s_vvm,
    SUM(v * m * m) AS s_vmm,
    SUM(m * m * m) AS s_mmm
  FROM _dev
  GROUP BY
    arm_lo
)
SELECT
  s.arm_lo AS arm,
  s.n_mixed AS n_mixed,
  s.null_unit AS null_unit,
  s.n_units AS n_units,
  s.null_v AS null_v,
  s.null_m AS null_m,
  s.c_v AS c_v,
  s.c_m AS c_m,
  s.c_x0 AS c_x0,
  s.c_x1 AS c_x1,
  d.n AS n,
  d.s_v AS s_v,
  d.s_m AS s_m,
  d.s_x0 AS s_x0,
  d.s_x1 AS s_x1,
  d.s_vv AS s_vv,
  d.s_vm AS s_vm,
  d.s_vx0 AS s_vx0,
  d.s_vx1 AS s_vx1,
  d.s_mm AS s_mm,
  d.s_mx0 AS s_mx0,
  d.s_mx1 AS s_mx1,
  d.s_x0x0 AS s_x0x0,
  d.s_x0x1 AS s_x0x1,
  d.s_x1x1 AS s_x1x1,
  d.s_vvv AS s_vvv,
  d.s_vvm AS s_vvm,
  d.s_vmm AS s_vmm,
  d.s_mmm AS s_mmm
FROM _shifts AS s
LEFT JOIN _sums AS d
  ON s.arm_lo = d.arm_lo
ORDER BY
  s.arm_lo
