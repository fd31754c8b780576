CREATE TABLE `key_rate_buckets` (
	`key` text PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `key_rate_buckets_at` ON `key_rate_buckets` (`at`);