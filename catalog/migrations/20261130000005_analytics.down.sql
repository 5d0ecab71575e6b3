DROP INDEX dataset_metrics_by_name;
DROP TABLE dataset_metrics;
DROP INDEX check_results_by_dataset;
DROP INDEX check_results_by_check;
DROP TABLE check_results;
DROP TABLE quality_checks;
DROP INDEX dataset_profiles_by_dataset;
DROP TABLE dataset_profiles;
