-- perfopt--1.0.sql: assembled by the Makefile from this header and the SQL part of
-- each capability (stats/, cache/, advisor/)

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION perfopt" to load this file. \quit
