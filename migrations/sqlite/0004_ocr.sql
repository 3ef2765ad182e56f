-- OCR: each document keeps the OCR choices it is extracted with (so a re-process can change
-- them), and each page records the resolution it was read at and why it went to OCR.
alter table documents add column ocr_mode text not null default 'auto';
alter table documents add column ocr_languages text not null default 'eng';
alter table pages add column dpi integer;
alter table pages add column ocr_reason text;
