CREATE TABLE "blog" (
	"id" integer PRIMARY KEY NOT NULL,
	"title" text,
	"content" text
);
