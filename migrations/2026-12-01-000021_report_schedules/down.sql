DROP TABLE report_deliveries;
DROP TABLE report_schedules;
