DROP TABLE export_links;
