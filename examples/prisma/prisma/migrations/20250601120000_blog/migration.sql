-- The shadow database Prisma creates for `migrate dev` is a plain new
-- database: the migrations install the extension themselves.
CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE;

-- CreateTable
CREATE TABLE "blog" (
    "id" INTEGER NOT NULL,
    "title" TEXT,
    "content" TEXT,

    CONSTRAINT "blog_pkey" PRIMARY KEY ("id")
);
