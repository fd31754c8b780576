CREATE TABLE `token_revocations` (
	`tenant_id` text NOT NULL,
	`token_id` text NOT NULL,
	`before` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `token_id`)
);
--> statement-breakpoint
CREATE INDEX `token_revocations_expiry` ON `token_revocations` (`expires_at`);--> statement-breakpoint
ALTER TABLE `workflows` ADD `variables_schema` text;